"""More than one teacher in one store: a complete store per extra teacher under ``teachers/<name>``.

The root store is the first teacher's (L4P's), unchanged: schema v2 readers open it and see
nothing new (they never look below ``teachers/``). Each extra teacher is a complete p4d store of
its own at ``<store>/teachers/<name>`` — own ``zarr.json`` (spec, teacher name + config + weights
hash, schema version), own arrays (latents, maps in its own shapes), own status, failures and
heads — over the same clip axis: the same videos (``videos.json``) and sampling, so clip i is the
same frames in every teacher. ``p4d precompute VIDEOS <store>/teachers/<name> --teacher ...``
fills one; :func:`open_teacher` opens it and refuses one whose clips differ from the root's.
"""

from __future__ import annotations

import posixpath

from p4d.cache_schema.store import CacheStore, _fs, open_store
from p4d.errors import CacheSchemaError, ConfigError

__all__ = ["TEACHERS_GROUP", "teacher_url", "teacher_names", "open_teacher", "clip_axis_problems"]

TEACHERS_GROUP = "teachers"


def teacher_url(url: str, name: str) -> str:
    """Where teacher ``name``'s store lives inside the store at ``url``."""
    if not name or "/" in name or name in (".", ".."):
        raise ConfigError(f"teacher name {name!r}: expected a plain folder name (no '/')")
    return posixpath.join(str(url).rstrip("/"), TEACHERS_GROUP, name)


def teacher_names(url: str) -> list[str]:
    """Names of the extra teachers stored under ``url`` (folders of ``teachers/`` holding a zarr.json)."""
    fs, root = _fs(str(url))
    folder = posixpath.join(root, TEACHERS_GROUP)
    if not fs.exists(folder):
        return []
    return sorted(posixpath.basename(p.rstrip("/")) for p in fs.ls(folder, detail=False)
                  if fs.exists(posixpath.join(p, "zarr.json")))


def clip_axis_problems(primary: CacheStore, other: CacheStore) -> list[str]:
    """Why clip i of ``other`` is not clip i of ``primary`` (videos, clip counts, sampling); [] if it is."""
    problems = []
    if [v.path for v in primary.videos] != [v.path for v in other.videos]:
        problems.append("another video list")
    elif [v.num_clips for v in primary.videos] != [v.num_clips for v in other.videos]:
        problems.append("other clip counts per video")
    if primary.spec.sampling != other.spec.sampling:
        problems.append(f"sampling {other.spec.sampling} vs {primary.spec.sampling}")
    return problems


def open_teacher(url: str, name: str | None = None, mode: str = "r") -> CacheStore:
    """The store of teacher ``name`` inside ``url`` (None: the root's own teacher), checked to
    share the root's clip axis."""
    primary = open_store(str(url), mode)
    if name is None:
        return primary
    names = teacher_names(url)
    if name not in names:
        raise CacheSchemaError(f"{url}: no teacher {name!r} under {TEACHERS_GROUP}/ (found: {', '.join(names) or 'none'}); "
                               f"`p4d precompute VIDEOS {teacher_url(url, name)} --teacher ...` adds one")
    other = open_store(teacher_url(url, name), mode)
    problems = clip_axis_problems(primary, other)
    if problems:
        raise CacheSchemaError(f"{teacher_url(url, name)}: its clips are not the root store's ({'; '.join(problems)}); "
                               "precompute it from the same videos with the same sampling")
    return other
