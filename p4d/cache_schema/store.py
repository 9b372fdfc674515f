"""Create and open cache stores (local path or fsspec URL); :class:`CacheStore`, the handle every job uses.

A store is one Zarr v3 group with three sub-groups (``latents``, ``maps``, ``clips``), side files
``videos.json`` (the planned videos), ``failures/shard-{id}.json`` (failure reasons) and
``created.json`` (the creation marker, written last), and root attrs recording the schema
version and the full :class:`CacheSpec`. Creation is atomic (:func:`create_store`).
"""

from __future__ import annotations

import errno
import glob
import hashlib
import importlib.metadata
import json
import logging
import os
import posixpath
import shutil
import socket
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import fsspec
import numpy as np
import zarr
import zarr.storage

from p4d.cache_schema.codecs import LATENT_CODECS
from p4d.cache_schema.layout import (
    GROUPS,
    STATUS_DONE,
    STATUS_FAILED,
    STATUS_PENDING,
    ArrayLayout,
    array_layouts,
    checksum_problems,
    dims_description,
)
from p4d.cache_schema.labels import RANDOM_WEIGHTS_KEY
from p4d.cache_schema.map_codecs import map_codec_attrs
from p4d.cache_schema.urls import missing_store_message, url_to_fs
from p4d.cache_schema.spec import READABLE_SCHEMA_VERSIONS, SCHEMA_VERSION, CacheSpec, VideoEntry
from p4d.errors import (CacheError, CacheIncompleteError, CacheNotFoundError, CacheSchemaError, CacheVersionError,
                        ConfigError, MissingDependencyError)

log = logging.getLogger(__name__)


def _p4d_version() -> str:
    try:
        return importlib.metadata.version("p4d")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


VIDEOS_FILE = "videos.json"
FAILURES_DIR = "failures"
FIDELITY_DIR = "fidelity"  # fidelity/shard-{id}.json: the latent codec's self-check figures per clip
RUNS_DIR = "runs"  # runs/shard-{id}.json: device, dtype, GPU and host a shard was last computed on (precompute)
CREATED_FILE = "created.json"  # the creation marker, written last: {schema_version, num_clips, videos_sha256}


def _is_url(url: str) -> bool:
    return "://" in url


def _zarr_store(url: str, read_only: bool) -> zarr.storage.StoreLike:
    if _is_url(url):
        # the local filesystem does not create parent folders of chunk files unless asked to
        opts = {"auto_mkdir": True} if url.split("://", 1)[0] in ("file", "local") else None
        return zarr.storage.FsspecStore.from_url(url, read_only=read_only, storage_options=opts)
    return zarr.storage.LocalStore(url, read_only=read_only)


def _fs(url: str) -> tuple[fsspec.AbstractFileSystem, str]:
    return url_to_fs(url)


def _check_side_name(name: str) -> None:
    parts = name.split("/")
    if not name or name.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise CacheError(f"side file name {name!r}: expected a relative path inside the store")


class CacheStore:
    """A thin, picklable handle on a cache store: url, spec, videos; zarr arrays opened lazily.

    ``mode`` is ``"r"`` (readers) or ``"r+"`` (writers: ``write_shard``). Pickling keeps only the
    url, mode, spec, videos and clip count, so a handle can be shipped to dask workers and
    DataLoader workers (spawn), which reopen the arrays on first use.
    """

    def __init__(self, url: str, spec: CacheSpec, videos: Sequence[VideoEntry], num_clips: int, mode: str = "r"):
        if mode not in ("r", "r+"):
            raise CacheError(f"cache store mode {mode!r}: expected 'r' or 'r+'")
        self.url = str(url)
        self.spec = spec
        self.videos = list(videos)
        self.num_clips = int(num_clips)
        self.mode = mode
        self._zstore = None
        self._arrays: dict[str, zarr.Array] = {}
        self._present: set[tuple[str, int]] = set()

    # --- pickling: drop open handles ---------------------------------------------------
    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_zstore"] = None
        state["_arrays"] = {}
        state["_present"] = set()
        return state

    def __repr__(self) -> str:
        return (f"CacheStore({self.url!r}, clips={self.num_clips}, shards={self.num_shards}, "
                f"codec={self.spec.latent_codec!r}, mode={self.mode!r})")

    # --- layout ------------------------------------------------------------------------
    @property
    def num_shards(self) -> int:
        return self.spec.num_shards(self.num_clips)

    @property
    def layouts(self) -> dict[str, ArrayLayout]:
        return array_layouts(self.spec, self.num_clips)

    def shard_clips(self, shard_id: int) -> range:
        """Global clip indices of one shard (the last one may be short)."""
        if isinstance(shard_id, bool) or not isinstance(shard_id, (int, np.integer)) or not 0 <= shard_id < self.num_shards:
            raise CacheError(f"shard {shard_id!r} of {self.url}: expected 0 <= shard < {self.num_shards}")
        s = self.spec.clips_per_shard
        return range(int(shard_id) * s, min((int(shard_id) + 1) * s, self.num_clips))

    def shard_of(self, clip: int) -> int:
        return int(clip) // self.spec.clips_per_shard

    # --- zarr access -------------------------------------------------------------------
    @property
    def zarr_store(self):
        if self._zstore is None:
            self._zstore = _zarr_store(self.url, read_only=self.mode == "r")
        return self._zstore

    def array(self, path: str) -> zarr.Array:
        """The zarr array at ``path`` (e.g. ``maps/depth``), opened on first use."""
        arr = self._arrays.get(path)
        if arr is None:
            try:
                arr = zarr.open_array(store=self.zarr_store, path=path, mode="r" if self.mode == "r" else "r+",
                                      zarr_format=3)
                # writers store every chunk, even one equal to the fill value (zarr 3.1 ignores the
                # array's creation-time config on reopen): a done clip's chunk is never absent, so
                # absence always means damage. Per array, not through zarr's process-wide config,
                # which a concurrent open in another thread (a reader) could flip meanwhile.
                if self.mode == "r+":
                    arr = arr.with_config({"write_empty_chunks": True})
            except (FileNotFoundError, KeyError, zarr.errors.ArrayNotFoundError, zarr.errors.NodeTypeValidationError) as exc:
                raise CacheSchemaError(f"{self.url}: array {path} is missing ({type(exc).__name__})") from exc
            self._arrays[path] = arr
        return arr

    def shard_file(self, path: str, shard_id: int) -> str:
        """Filesystem path (fsspec) of the shard file of array ``path`` holding shard ``shard_id``."""
        arr = self.array(path)
        key = arr.metadata.encode_chunk_key((int(shard_id),) + (0,) * (arr.ndim - 1))
        return posixpath.join(_fs(self.url)[1], path, key)

    def delete_shard_file(self, path: str, shard_id: int) -> None:
        """Remove one shard file (zarr then reads fill values, which the readers refuse for done
        clips); a torn file cannot be overwritten in place, because zarr reads an existing shard
        before writing into it."""
        self._require_writable("delete_shard_file")
        fs, _ = _fs(self.url)
        target = self.shard_file(path, shard_id)
        self._present.discard((path, int(shard_id)))
        if fs.exists(target):
            fs.rm(target)

    def missing_shards(self, path: str, shards) -> list[int]:
        """Those of ``shards`` whose file of array ``path`` does not exist: zarr would read their
        chunks as the fill value, so a done clip there is lost, not zero. Files seen present are
        remembered by this handle (one stat per array and shard)."""
        fs, _ = _fs(self.url)
        missing = []
        for shard in shards:
            key = (path, int(shard))
            if key in self._present:
                continue
            if fs.exists(self.shard_file(path, int(shard))):
                self._present.add(key)
            else:
                missing.append(int(shard))
        return missing

    def root(self) -> zarr.Group:
        return zarr.open_group(store=self.zarr_store, mode="r" if self.mode == "r" else "r+", zarr_format=3)

    @property
    def attrs(self) -> dict:
        return dict(self.root().attrs)

    def update_attrs(self, values: dict) -> None:
        """Add or replace root attrs (e.g. the D_m heads' config); one writer only (the job driver)."""
        self._require_writable("update_attrs")
        reserved = {"schema_version", "spec", "num_clips", "num_shards"} & set(values)
        if reserved:
            raise CacheError(f"update_attrs on {self.url}: {sorted(reserved)} are fixed at creation")
        self.root().attrs.update(values)

    def _require_writable(self, what: str) -> None:
        if self.mode != "r+":
            raise CacheError(f"{what} on {self.url}: the store was opened read-only; open it with mode='r+'")

    # --- status --------------------------------------------------------------------------
    def read_status(self) -> tuple[np.ndarray, list[int]]:
        """(status per clip, shards whose status could not be read). Unreadable (torn) status
        shards and values outside {0, 1, 2} read as pending."""
        arr = self.array("clips/status")
        torn: list[int] = []
        try:
            status = np.asarray(arr[:], dtype=np.uint8)
        except Exception:  # noqa: BLE001 - any decode error of a torn shard: fall back per shard
            status = np.zeros(self.num_clips, dtype=np.uint8)
            for shard in range(self.num_shards):
                rng = self.shard_clips(shard)
                try:
                    status[rng.start:rng.stop] = arr[rng.start:rng.stop]
                except Exception as exc:  # noqa: BLE001
                    log.warning("%s: status of shard %d unreadable (%s); its clips count as pending", self.url, shard, exc)
                    torn.append(shard)
        status = status.copy()
        status[status > STATUS_FAILED] = STATUS_PENDING
        return status, torn

    def clip_status(self) -> np.ndarray:
        """(clips,) uint8: 0 pending, 1 done, 2 failed (a torn status shard reads as pending)."""
        return self.read_status()[0]

    def status(self) -> dict[str, int]:
        st = self.clip_status()
        return {"pending": int((st == STATUS_PENDING).sum()), "done": int((st == STATUS_DONE).sum()),
                "failed": int((st == STATUS_FAILED).sum()), "total": int(st.size)}

    def shards_to_do(self, *, retry_failed: bool = False, force: bool = False) -> list[int]:
        """Shards a (resumed) precompute must (re)write from scratch: every shard not all terminal,
        plus shards holding failed clips with ``retry_failed``, or every shard with ``force``."""
        if force:
            return list(range(self.num_shards))
        st = self.clip_status()
        todo = []
        for shard in range(self.num_shards):
            rng = self.shard_clips(shard)
            part = st[rng.start:rng.stop]
            if (part == STATUS_PENDING).any() or (retry_failed and (part == STATUS_FAILED).any()):
                todo.append(shard)
        return todo

    def _shard_side_records(self, folder: str, what: str) -> list[tuple[str, dict]]:
        """Every readable ``folder/shard-*.json`` side file as (path, record); an unreadable one is
        logged and skipped."""
        fs, root = _fs(self.url)
        out = []
        for path in sorted(fs.glob(posixpath.join(root, folder, "shard-*.json"))):
            try:
                record = json.loads(fs.cat_file(path))
                if not isinstance(record, dict):
                    raise TypeError(f"expected a JSON object, got {type(record).__name__}")
            except (ValueError, TypeError) as exc:
                log.warning("%s: unreadable %s record %s (%s)", self.url, what, path, exc)
                continue
            out.append((path, record))
        return out

    def clip_records(self, folder: str, status: int, what: str,
                     side_records: list[tuple[str, dict]] | None = None) -> dict[int, Any]:
        """``clips`` entries of the ``folder/shard-*.json`` side files, by global clip index, for the
        clips whose status is ``status`` (a record left by an older write of the shard is ignored);
        ``side_records``: those files as :meth:`_shard_side_records` read them, when already read."""
        st = self.clip_status()
        out: dict[int, Any] = {}
        if side_records is None:
            side_records = self._shard_side_records(folder, what)
        for path, record in side_records:
            clips = record.get("clips")
            if not isinstance(clips, dict):
                log.warning("%s: unreadable %s record %s (no clips mapping)", self.url, what, path)
                continue
            for clip, value in clips.items():
                clip = int(clip)
                if 0 <= clip < self.num_clips and st[clip] == status:
                    out[clip] = value
        return dict(sorted(out.items()))

    def failures(self) -> dict[int, str]:
        """Failure reason per failed clip (global index), from ``failures/shard-{id}.json``."""
        out = {clip: str(reason) for clip, reason in self.clip_records(FAILURES_DIR, STATUS_FAILED, "failure").items()}
        for clip in np.flatnonzero(self.clip_status() == STATUS_FAILED):
            out.setdefault(int(clip), "no reason recorded")
        return dict(sorted(out.items()))

    def shard_runs(self) -> dict[int, dict]:
        """Where each shard was last computed (``runs/shard-{id}.json``: device, dtype, gpu, host)."""
        out = {}
        for path, record in self._shard_side_records(RUNS_DIR, "run"):
            try:
                out[int(record["shard"])] = record
            except (ValueError, KeyError, TypeError) as exc:
                log.warning("%s: unreadable run record %s (%s)", self.url, path, exc)
        return dict(sorted(out.items()))

    # --- side files ----------------------------------------------------------------------
    def side_path(self, name: str) -> str:
        _check_side_name(name)
        return posixpath.join(_fs(self.url)[1], name)

    def write_side_file(self, name: str, data: bytes) -> None:
        """Write ``name`` (e.g. ``heads.safetensors``) inside the store; atomic on local disks."""
        self._require_writable(f"write_side_file({name!r})")
        fs, _ = _fs(self.url)
        path = self.side_path(name)
        fs.makedirs(posixpath.dirname(path), exist_ok=True)
        if "file" in fs.protocol or "local" in fs.protocol:
            tmp = f"{path}.{uuid.uuid4().hex}.partial"
            fs.pipe_file(tmp, bytes(data))
            fs.mv(tmp, path)
        else:
            fs.pipe_file(path, bytes(data))

    def read_side_file(self, name: str) -> bytes:
        fs, _ = _fs(self.url)
        path = self.side_path(name)
        try:
            return fs.cat_file(path)
        except FileNotFoundError as exc:
            raise CacheNotFoundError(f"{self.url}: side file {name} does not exist") from exc

    def remove_side_file(self, name: str) -> None:
        self._require_writable(f"remove_side_file({name!r})")
        fs, _ = _fs(self.url)
        path = self.side_path(name)
        if fs.exists(path):
            fs.rm(path)


# --- checks --------------------------------------------------------------------------------


def array_problems(store: CacheStore) -> dict[str, list[str]]:
    """Per array path, its problems against the contract: missing, shape/dtype/dims/chunks drift,
    and (schema v2 on) chunks or shard index without a crc32c checksum."""
    out: dict[str, list[str]] = {}
    checksummed = store.attrs.get("schema_version") == SCHEMA_VERSION
    for path, lay in store.layouts.items():
        problems: list[str] = []
        try:
            arr = store.array(path)
        except CacheSchemaError:
            out[path] = [f"missing array {path} (expected shape {lay.shape}, dtype {lay.dtype})"]
            continue
        if tuple(arr.shape) != lay.shape:
            problems.append(f"{path}: shape {tuple(arr.shape)}, expected {lay.shape} from the spec")
        if str(arr.dtype) != lay.dtype:
            problems.append(f"{path}: dtype {arr.dtype}, expected {lay.dtype}")
        dims = tuple(arr.metadata.dimension_names or ())
        if dims != lay.dims:
            problems.append(f"{path}: dimension_names {dims}, expected {lay.dims}")
        if tuple(arr.chunks) != lay.chunks or tuple(arr.shards or ()) != lay.shards:
            problems.append(f"{path}: chunks {arr.chunks} / shards {arr.shards}, expected {lay.chunks} / {lay.shards}")
        if checksummed:
            problems += [f"{path}: {p}" for p in checksum_problems(arr)]
        if problems:
            out[path] = problems
    return out


def check_arrays(store: CacheStore) -> list[str]:
    """Problems of the store's arrays against the contract: missing arrays, shape/dtype drift."""
    return [p for probs in array_problems(store).values() for p in probs]


# --- create / open ----------------------------------------------------------------------------


def _root_attrs(spec: CacheSpec, num_clips: int) -> dict:
    codec = LATENT_CODECS[spec.latent_codec]
    return {
        "p4d_cache": "p4d teacher-target cache: F_4D latents and 4D maps per clip (Zarr v3)",
        "schema_version": SCHEMA_VERSION,
        "p4d_version": _p4d_version(),
        "spec": spec.to_dict(),
        "num_clips": num_clips,
        "num_shards": spec.num_shards(num_clips),
        "clips_per_shard": spec.clips_per_shard,
        "taps": list(spec.taps),
        "modalities": list(spec.modalities),
        "teacher": spec.teacher,
        "sampling": spec.sampling,
        "spatial": spec.spatial,
        "normalisation": spec.normalisation,
        "flow_frame0_invalid": True,
        "latent_codec": codec.to_attrs(spec.latent_codec_version),
        "map_dtype": spec.map_dtype,
        "map_codec": spec.map_codec,
        "dims": dims_description(spec),
        "status_codes": {"0": "pending", "1": "done", "2": "failed"},
    }


def _creation_step(name: str) -> None:
    """Called after each step of a store's creation; does nothing. The fault tests replace it with
    one that kills the process at a chosen step, then check that a rerun succeeds."""


def videos_table_bytes(videos: Sequence[VideoEntry]) -> bytes:
    """The bytes of ``videos.json`` for ``videos`` (what the creation marker's hash covers)."""
    return json.dumps([v.to_dict() for v in videos], indent=1).encode()


def video_of_clip(videos: Sequence[VideoEntry]) -> np.ndarray:
    """(clips,) int32: the videos.json row of every clip (clips are video-major): what ``clips/video`` holds."""
    return np.repeat(np.arange(len(videos), dtype=np.int32), [v.num_clips for v in videos])


def _build(path: str, spec: CacheSpec, videos: list[VideoEntry], num_clips: int) -> None:
    """Write a complete store at ``path``: root, groups, arrays, videos.json, clips/video, and the
    creation marker last."""
    zstore = _zarr_store(path, read_only=False)
    root_group = zarr.open_group(store=zstore, mode="w", zarr_format=3, attributes=_root_attrs(spec, num_clips))
    _creation_step("root")
    for g in GROUPS:
        root_group.create_group(g)
    for lay in array_layouts(spec, num_clips).values():
        attrs = {"description": lay.description}
        if lay.path == "maps/flow":
            attrs["frame0_invalid"] = True
        if lay.group == "latents":
            attrs["codec"] = spec.latent_codec
        if lay.group == "maps" and lay.name in spec.modalities:
            attrs["codec"] = map_codec_attrs(lay.name, spec.map_codec)
        zarr.create_array(
            store=zstore, name=lay.path, shape=lay.shape, dtype=lay.dtype, chunks=lay.chunks, shards=lay.shards,
            compressors=lay.compressors(), fill_value=lay.fill_value, dimension_names=lay.dims,
            attributes=attrs, zarr_format=3, config={"write_empty_chunks": True},
        )
        _creation_step(f"array {lay.path}")
    store = CacheStore(path, spec, videos, num_clips, mode="r+")
    table = videos_table_bytes(videos)
    store.write_side_file(VIDEOS_FILE, table)
    _creation_step("videos.json")
    store.array("clips/video")[:] = video_of_clip(videos)
    _creation_step("clips/video")
    marker = {"schema_version": SCHEMA_VERSION, "num_clips": num_clips,
              "videos_sha256": hashlib.sha256(table).hexdigest()}
    store.write_side_file(CREATED_FILE, json.dumps(marker, indent=1).encode())
    _creation_step("marker")


def _renames_atomically(url: str) -> bool:
    """Whether ``url`` is on a local disk, where renaming a folder is atomic (object stores copy)."""
    return not _is_url(url) or url.split("://", 1)[0] in ("file", "local")


def _state(fs: fsspec.AbstractFileSystem, root: str) -> str:
    """What is at ``root``: absent | empty | file | foreign (a non-empty folder, not a store) |
    incomplete (a store whose creation did not finish) | complete."""
    if not fs.exists(root):
        return "absent"
    if not fs.isdir(root):
        return "file"
    if not fs.exists(posixpath.join(root, "zarr.json")):
        return "empty" if not fs.ls(root) else "foreign"
    if fs.exists(posixpath.join(root, CREATED_FILE)):
        return "complete"
    try:  # schema v1 stores predate the marker: complete once videos.json exists
        legacy = json.loads(fs.cat_file(posixpath.join(root, "zarr.json"))).get("attributes", {}).get("schema_version")
    except (ValueError, AttributeError):
        legacy = None
    if isinstance(legacy, int) and legacy < 2 and fs.exists(posixpath.join(root, VIDEOS_FILE)):
        return "complete"
    return "incomplete"


def _holds_written_shards(fs: fsspec.AbstractFileSystem, root: str) -> bool:
    status_dir = posixpath.join(root, "clips", "status", "c")
    return fs.exists(status_dir) and bool(fs.find(status_dir))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _partial_name(name: str, kind: str) -> str:
    return f".{name}.{kind}-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def _remove_dead_partials(parent: Path, name: str) -> None:
    """Delete the temporary siblings (``.NAME.creating-HOST-PID-*``, ``.NAME.replaced-...``) left by
    creations on this host whose process is gone (killed); live ones belong to concurrent runs."""
    host = socket.gethostname()
    for kind in ("creating", "replaced"):
        prefix = f".{name}.{kind}-{host}-"
        for p in parent.glob(f"{glob.escape(prefix)}*"):
            pid = p.name[len(prefix):].split("-", 1)[0]
            if pid.isdigit() and not _pid_alive(int(pid)):
                log.warning("removing %s, left by a killed store creation", p)
                shutil.rmtree(p, ignore_errors=True)


def create_store(url: str, spec: CacheSpec, videos: Sequence[VideoEntry], *, overwrite: bool = False,
                 join: bool = False) -> CacheStore:
    """Create an empty store for ``videos`` (clips video-major, every clip pending); return it opened ``r+``.

    Atomic: on a local disk the store is built in a temporary sibling and renamed into place, so
    it appears complete or not at all; elsewhere (fsspec URLs) it is built in place with the
    creation marker ``created.json`` written last, and a store without it counts as unfinished.
    An unfinished store (a killed creation) is redone. An existing complete store is refused,
    replaced (``overwrite``) or opened and returned (``join``: the caller checks its spec). Of
    several runs creating the same new local store at once exactly one creates; the others join
    (``join``) or are refused. Never deletes a non-empty folder that is not a zarr store.
    """
    url = str(url)
    if not isinstance(spec, CacheSpec):
        raise ConfigError(f"create_store({url}): expected a CacheSpec, got {type(spec).__name__}")
    videos = list(videos)
    if any(not isinstance(v, VideoEntry) for v in videos):
        raise ConfigError(f"create_store({url}): videos must be VideoEntry rows")
    current = LATENT_CODECS[spec.latent_codec].version
    if spec.latent_codec_version != current:
        raise ConfigError(f"create_store({url}): latent_codec_version {spec.latent_codec_version} of "
                          f"{spec.latent_codec} is read-only; new stores are written in version {current}")
    num_clips = sum(v.num_clips for v in videos)
    if num_clips < 1:
        raise ConfigError(f"create_store({url}): expected at least one planned clip, found {num_clips} "
                          f"in {len(videos)} videos")
    fs, root = _fs(url)
    state = _state(fs, root)
    if state == "complete" and not overwrite:
        if join:
            if _renames_atomically(url):
                _remove_dead_partials(Path(root).parent, Path(root).name)
            return open_store(url, mode="r+")
        raise CacheError(f"cache store {url} already exists; `p4d precompute VIDEOS {url}` fills it, "
                         f"`p4d cache init --overwrite` replaces it")
    if state == "foreign":
        raise CacheError(f"{url} exists and is not a zarr store; refusing to replace it (choose another path)")
    if state == "file":
        raise CacheError(f"{url} exists and is a file, not a store folder")
    if state == "incomplete":
        if _holds_written_shards(fs, root):
            raise CacheSchemaError(f"{url}: the store holds written shards but no creation marker {CREATED_FILE}; "
                                   f"run `p4d cache verify {url}`, or rebuild it in a new folder")
        log.warning("%s: its creation did not finish (no %s); creating it again", url, CREATED_FILE)
    if not _renames_atomically(url):
        if state in ("complete", "incomplete"):
            fs.rm(root, recursive=True)
        _build(url, spec, videos, num_clips)
    else:
        created = _create_by_rename(Path(root), spec, videos, num_clips, replace=state in ("complete", "incomplete"))
        if not created:
            if join:
                log.info("%s was created by a concurrent run; joining it", url)
                return open_store(url, mode="r+")
            raise CacheError(f"cache store {url} was created by another run meanwhile; "
                             f"`p4d precompute VIDEOS {url}` fills it")
    log.info("created %s: %d clips in %d shards", url, num_clips, spec.num_shards(num_clips))
    return CacheStore(url, spec, videos, num_clips, mode="r+")


def _create_by_rename(root: Path, spec: CacheSpec, videos: list[VideoEntry], num_clips: int, *, replace: bool) -> bool:
    """Build the store in a temporary sibling and rename it to ``root``; False if another run's
    store got there first (the rename of a folder onto a non-empty one fails)."""
    parent, name = root.parent, root.name
    parent.mkdir(parents=True, exist_ok=True)
    _remove_dead_partials(parent, name)
    tmp = parent / _partial_name(name, "creating")
    aside = None
    try:
        _build(str(tmp), spec, videos, num_clips)
        if replace:
            aside = parent / _partial_name(name, "replaced")
            try:
                os.rename(root, aside)
            except FileNotFoundError:
                aside = None
            _creation_step("moved aside")
        try:
            os.rename(tmp, root)
        except OSError as exc:
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
            shutil.rmtree(tmp, ignore_errors=True)
            return False
        _creation_step("renamed")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)
    return True


def open_store(url: str, mode: str = "r", *, check: bool = True) -> CacheStore:
    """Open an existing store; validates the schema version, the creation marker and (``check``)
    every array's shape/dtype.

    Raises CacheNotFoundError (no store), CacheIncompleteError (its creation did not finish),
    CacheVersionError (a schema version this p4d cannot read, or writing a read-only older one),
    CacheSchemaError (not a p4d cache, bad spec, missing arrays or shape/dtype drift).
    """
    url = str(url)
    fs, root = _fs(url)
    if fs.isfile(root):  # not CacheNotFoundError: precompute must not try to create a store over the file
        raise CacheError(f"{url} is a file, not a cache store (a folder holding zarr.json); "
                         f"`p4d precompute VIDEOS STORE` with STORE a new folder path creates one from videos")
    if not fs.exists(posixpath.join(root, "zarr.json")):
        raise CacheNotFoundError(missing_store_message(url, fs, root))
    try:
        group = zarr.open_group(store=_zarr_store(url, read_only=True), mode="r", zarr_format=3)
    except Exception as exc:  # noqa: BLE001 - zarr raises several types for a foreign/corrupt root
        raise CacheSchemaError(f"{url}: not a readable Zarr v3 group ({exc})") from exc
    attrs = dict(group.attrs)
    if "schema_version" not in attrs or "spec" not in attrs:
        raise CacheSchemaError(f"{url} is a zarr store but not a p4d cache (no schema_version/spec in root attrs)")
    version = attrs["schema_version"]
    writer = attrs.get("p4d_version", "an older p4d")
    if version not in READABLE_SCHEMA_VERSIONS:
        raise CacheVersionError(
            f"cache {url} was written with schema v{version}, this p4d reads v{SCHEMA_VERSION} "
            f"(and v{', v'.join(map(str, READABLE_SCHEMA_VERSIONS[:-1]))} read-only): rebuild it with "
            f"`p4d precompute VIDEOS NEW_STORE`, or use p4d=={writer} to read it"
        )
    if version != SCHEMA_VERSION and mode != "r":
        raise CacheVersionError(
            f"cache {url} has schema v{version} (no chunk checksums), which this p4d reads but never writes; "
            f"rebuild it with `p4d precompute VIDEOS NEW_STORE`, or use p4d=={writer} to extend it"
        )
    if version == SCHEMA_VERSION and not fs.exists(posixpath.join(root, CREATED_FILE)):
        raise CacheIncompleteError(
            f"{url}: the store's creation did not finish (no {CREATED_FILE}: a run creating it was killed, or "
            f"is still creating it); `p4d precompute VIDEOS {url}` redoes the creation"
        )
    try:
        spec = CacheSpec.from_dict(attrs["spec"])
    except ConfigError as exc:
        raise CacheSchemaError(f"{url}: root attrs hold an invalid spec: {exc}") from exc
    num_clips = attrs.get("num_clips")
    if not isinstance(num_clips, int) or num_clips < 1:
        raise CacheSchemaError(f"{url}: root attr num_clips: expected a positive int, got {num_clips!r}")
    try:
        raw = json.loads(fs.cat_file(posixpath.join(root, VIDEOS_FILE)))
        videos = [VideoEntry.from_dict(v) for v in raw]
    except FileNotFoundError as exc:
        raise CacheSchemaError(f"{url}: side file {VIDEOS_FILE} is missing although the store was created; "
                               f"the store is damaged, rebuild it in a new folder") from exc
    except (ValueError, ConfigError, TypeError) as exc:
        raise CacheSchemaError(f"{url}: {VIDEOS_FILE} is unreadable: {exc}") from exc
    if sum(v.num_clips for v in videos) != num_clips:
        raise CacheSchemaError(f"{url}: {VIDEOS_FILE} plans {sum(v.num_clips for v in videos)} clips, "
                               f"root attrs say {num_clips}")
    current = LATENT_CODECS[spec.latent_codec].version
    if mode != "r" and spec.latent_codec_version != current:
        raise CacheVersionError(
            f"cache {url} stores F_4D in {spec.latent_codec} format v{spec.latent_codec_version} (written before "
            f"v{current}: level 1 without the per-channel outlier split), which this p4d reads but never writes; "
            f"rebuild it with `p4d precompute VIDEOS NEW_STORE`, or use p4d=={writer} to extend it")
    store = CacheStore(url, spec, videos, num_clips, mode=mode)
    if check:
        problems = check_arrays(store)
        if problems:
            raise CacheSchemaError(f"{url} does not match its spec: " + "; ".join(problems)
                                   + " (run `p4d cache verify` for the full report)")
    return store


def bind_teacher(store: CacheStore, weights_hash: str, *, random_weights: bool = False) -> CacheStore:
    """Record the teacher's weights hash in a store planned without one (``p4d cache init``), so
    that precompute can fill it; returns the store reopened. The root ``zarr.json`` is rewritten
    atomically (temporary file + rename on a local disk)."""
    store._require_writable("bind_teacher")
    found = store.spec.teacher.get("weights_hash", "")
    if found == weights_hash:
        return store
    if found:
        raise CacheSchemaError(f"{store.url}: made with teacher weights {found}, not {weights_hash}")
    meta = json.loads(store.read_side_file("zarr.json"))
    attributes = meta["attributes"]
    attributes["spec"]["teacher"]["weights_hash"] = weights_hash
    attributes["teacher"]["weights_hash"] = weights_hash
    if random_weights:  # labelled RANDOM TEACHER by every reader (p4d.cache_schema.labels)
        attributes["spec"]["teacher"][RANDOM_WEIGHTS_KEY] = True
        attributes["teacher"][RANDOM_WEIGHTS_KEY] = True
    store.write_side_file("zarr.json", json.dumps(meta, indent=2).encode())
    again = open_store(store.url, mode=store.mode)
    if again.spec.teacher.get("weights_hash") != weights_hash:  # a concurrent run bound other weights
        raise CacheSchemaError(f"{store.url}: another run bound teacher weights "
                               f"{again.spec.teacher.get('weights_hash')} meanwhile, not {weights_hash}")
    return again
