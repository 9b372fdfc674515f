"""The p4d exception hierarchy.

Every error p4d raises on bad input derives from :class:`P4DError` and, where one fits, from
the matching builtin, so callers may catch either (``except FileNotFoundError`` works for a
missing store). Messages name the file or flag and say what was expected and what was found.
"""

from __future__ import annotations

import sys
from collections.abc import Callable


class P4DError(Exception):
    """Base class of every error p4d raises on purpose."""


class ConfigError(P4DError, ValueError):
    """A configuration value or command-line flag is invalid; the message names the flag."""


class CacheError(P4DError):
    """Something is wrong with a cache store."""


class CacheNotFoundError(CacheError, FileNotFoundError):
    """The store (or an array inside it) does not exist."""


class CacheIncompleteError(CacheNotFoundError):
    """The store's creation has not completed (no creation marker): a run planning it finishes or redoes it."""


class CacheSchemaError(CacheError, ValueError):
    """The store does not match the cache contract (shape, dtype, missing array, bad attrs)."""


class CacheVersionError(CacheSchemaError):
    """The store was written with another cache schema version."""


class ClipNotAvailableError(CacheError, LookupError):
    """A clip was asked for that is out of range, pending or failed."""


class VideoDecodeError(P4DError, ValueError):
    """A video file is missing, empty, corrupt, truncated or not a video; names the file."""


class CheckpointError(P4DError, ValueError):
    """A checkpoint is missing keys, has unexpected keys, or cannot be loaded safely."""


class Interrupted(P4DError):
    """Ctrl-C stopped a command; the message says what was kept and how to continue (exit code 130)."""

    exit_code = 130


class MissingDependencyError(P4DError, ImportError):
    """An optional dependency is not installed; the message names the pip extra."""


def require_package(module: str, extra: str) -> None:
    """Raise :class:`MissingDependencyError` naming ``p4d[extra]`` if ``module`` is absent."""
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise MissingDependencyError(
            f"{module!r} is not installed; install it with: pip install 'p4d[{extra}]'"
        )


def check_fields(owner: str, cls: type, data: object) -> None:
    """Raise :class:`ConfigError` unless ``data`` is a mapping whose keys are fields of the
    dataclass ``cls``; the message names ``owner``, the unknown keys and the known ones."""
    import dataclasses
    from collections.abc import Mapping

    if not isinstance(data, Mapping):
        raise ConfigError(f"{owner}: expected a mapping, found {type(data).__name__}")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"{owner}: unknown fields {unknown}; expected some of {sorted(known)}")


def run_cli(command: Callable[[], object], *, ctrl_c: str) -> None:
    """Run a command-line entry point: a :class:`P4DError` prints ``error: <message>`` on one line and
    exits 1, :class:`Interrupted` prints its message and exits 130, a bare Ctrl-C prints ``ctrl_c``
    and exits 130; no traceback in any of them."""
    try:
        command()
    except Interrupted as exc:
        print(str(exc), file=sys.stderr)
        raise SystemExit(exc.exit_code) from None
    except P4DError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    except KeyboardInterrupt:
        print(ctrl_c, file=sys.stderr)
        raise SystemExit(130) from None
