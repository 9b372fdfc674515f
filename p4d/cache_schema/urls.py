"""Store URLs: a local path or an fsspec URL, and the one-line messages a user needs about them.

The fsspec backends for object stores are optional extras: ``s3://`` needs ``pip install
'p4d[s3]'`` (s3fs), ``gs://``/``gcs://`` ``pip install 'p4d[gcs]'`` (gcsfs). Their ImportError
becomes a :class:`~p4d.errors.MissingDependencyError` naming the extra.
"""

from __future__ import annotations

import fsspec

from p4d.errors import MissingDependencyError

#: URL protocol -> (the module fsspec needs, the p4d extra that installs it)
PROTOCOL_EXTRAS: dict[str, tuple[str, str]] = {
    "s3": ("s3fs", "s3"), "s3a": ("s3fs", "s3"),
    "gs": ("gcsfs", "gcs"), "gcs": ("gcsfs", "gcs"),
}


def protocol(url: str) -> str:
    """``'s3'`` for ``s3://b/c.zarr``, ``'file'`` for a local path."""
    head, sep, _ = str(url).partition("://")
    return head.lower() if sep else "file"


def url_to_fs(url: str) -> tuple[fsspec.AbstractFileSystem, str]:
    """(filesystem, path without a trailing slash); a missing backend names the pip extra."""
    try:
        fs, path = fsspec.core.url_to_fs(str(url))
    except ImportError as exc:  # fsspec knows the protocol, its backend package is not installed
        proto = protocol(url)
        module, extra = PROTOCOL_EXTRAS.get(proto, (None, None))
        how = f"pip install 'p4d[{extra}]'" if extra else f"install the fsspec backend for {proto}:// ({exc})"
        raise MissingDependencyError(f"{url}: {proto}:// needs a package that is not installed; {how}") from None
    except ValueError as exc:  # fsspec: unknown protocol
        raise MissingDependencyError(f"{url}: {exc}") from None
    return fs, path.rstrip("/")


def missing_store_message(url: str, fs: fsspec.AbstractFileSystem, root: str) -> str:
    """Why there is no cache store at ``url`` (not a file: open_store refuses that first) and which command writes one."""
    where = "no such folder" if not fs.exists(root) else "the folder has no zarr.json"
    return (f"no cache store at {url} ({where}); write one with `p4d precompute VIDEOS {url}` "
            f"(or plan an empty one with `p4d cache init VIDEOS {url}`)")
