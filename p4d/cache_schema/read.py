"""Read decoded clip targets from a store: only done clips, never half-written or damaged ones.

A done clip is returned only if every chunk read for it exists (a missing shard file would read
as fill values) and passes its crc32c checksum; otherwise ClipNotAvailableError names the clip,
the array and the damage.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np

from p4d.cache_schema.codecs import LATENT_CODECS, bfloat16_bits_to_float32
from p4d.cache_schema.fidelity import FALLBACK_PART
from p4d.cache_schema.layout import STATUS_DONE, STATUS_FAILED
from p4d.cache_schema.map_codecs import decode_map, quant_part
from p4d.cache_schema.shard_read import read_shard_rows, shard_array
from p4d.cache_schema.store import CacheStore, _fs
from p4d.cache_schema.write import failures_file
from p4d.errors import CacheNotFoundError, ClipNotAvailableError

__all__ = ["read_clip", "read_clips"]


def _clip_indices(store: CacheStore, idx: Sequence[int]) -> np.ndarray:
    arr = np.asarray(idx)
    if arr.ndim != 1 or (arr.size and not np.issubdtype(arr.dtype, np.integer)):
        raise ClipNotAvailableError(f"clips of {store.url}: expected a 1-D sequence of clip indices, got {idx!r}")
    arr = arr.astype(np.int64)
    bad = arr[(arr < 0) | (arr >= store.num_clips)]
    if bad.size:
        raise ClipNotAvailableError(f"clip {int(bad[0])} of {store.url}: out of range [0, {store.num_clips})")
    return arr


def _failure_reason(store: CacheStore, clip: int) -> str:
    try:
        record = json.loads(store.read_side_file(failures_file(store.shard_of(clip))))
        return str(record["clips"][str(clip)])
    except (CacheNotFoundError, ValueError, KeyError, TypeError):
        return "no reason recorded"


def _runs(uniq: np.ndarray) -> list[slice]:
    """Sorted unique indices as contiguous slices (zarr's basic indexing is ~30x faster than
    its orthogonal selection with an index array)."""
    breaks = np.flatnonzero(np.diff(uniq) != 1) + 1
    return [slice(int(r[0]), int(r[-1]) + 1) for r in np.split(uniq, breaks)]


def _direct_reader(store: CacheStore, path: str):
    """(filesystem, ShardArray) for reading ``path``'s shard files directly, or None when its
    codec chain is not one :mod:`p4d.cache_schema.shard_read` handles (then zarr reads it)."""
    cache = store.__dict__.setdefault("_direct", {})
    if path not in cache:
        fs, root = _fs(store.url)
        try:
            cache[path] = (fs, shard_array(fs, root, path))
        except (OSError, ValueError, KeyError):
            cache[path] = (fs, None)
    fs, arr = cache[path]
    return None if arr is None else (fs, arr)


def _read_rows(store: CacheStore, path: str, uniq: np.ndarray) -> np.ndarray:
    """Rows ``uniq`` (sorted unique clip indices) of array ``path`` as stored: one direct read
    per shard touched (:mod:`p4d.cache_schema.shard_read`), else zarr's slice reads."""
    direct = _direct_reader(store, path)
    if direct is not None:
        fs, arr = direct
        shards = uniq // store.spec.clips_per_shard
        parts = []
        for shard in np.unique(shards):
            rows = uniq[shards == shard] - int(shard) * store.spec.clips_per_shard
            parts.append(read_shard_rows(fs, arr, int(shard), rows, url=store.url))
        return parts[0] if len(parts) == 1 else np.concatenate(parts)
    return _read_rows_zarr(store, path, uniq)


def _read_rows_zarr(store: CacheStore, path: str, uniq: np.ndarray) -> np.ndarray:
    arr = store.array(path)
    missing = store.missing_shards(path, sorted({store.shard_of(c) for c in uniq}))
    if missing:
        clip = next(int(c) for c in uniq if store.shard_of(c) in missing)
        raise ClipNotAvailableError(
            f"clip {clip} of {store.url}: the {path} file of shard {missing[0]} is missing although the clip is "
            f"marked done; `p4d cache repair {store.url}` then `p4d precompute` recomputes the shard"
        )
    try:
        rows = [np.asarray(arr[sl]) for sl in _runs(uniq)]
        return rows[0] if len(rows) == 1 else np.concatenate(rows)
    except Exception as exc:  # noqa: BLE001 - a torn shard raises a codec/checksum error
        for clip in uniq:  # name the clip whose shard is unreadable
            try:
                arr[int(clip)]
            except Exception as inner:  # noqa: BLE001
                raise ClipNotAvailableError(
                    f"clip {int(clip)} of {store.url}: {path} of shard {store.shard_of(clip)} is unreadable "
                    f"(torn or corrupt: {type(inner).__name__}); `p4d cache repair {store.url}` then `p4d precompute` "
                    "recomputes the shard"
                ) from inner
        raise ClipNotAvailableError(f"clips of {store.url}: reading {path} failed: {exc}") from exc


def _check_done(store: CacheStore, uniq: np.ndarray) -> None:
    if not uniq.size:
        return
    status_arr = store.array("clips/status")
    try:
        status = _read_rows(store, "clips/status", uniq).astype(np.uint8)
    except ClipNotAvailableError:  # a missing or torn status shard: those clips are pending
        status = np.zeros(uniq.size, dtype=np.uint8)
        for k, clip in enumerate(uniq):
            try:
                status[k] = status_arr[int(clip)]
            except Exception:  # noqa: BLE001
                status[k] = 0
    for clip, st in zip(uniq, status):
        if st == STATUS_DONE:
            continue
        if st == STATUS_FAILED:
            raise ClipNotAvailableError(f"clip {int(clip)} of {store.url} failed: {_failure_reason(store, int(clip))}")
        raise ClipNotAvailableError(
            f"clip {int(clip)} of {store.url} is pending (not computed, or its shard was interrupted); "
            "run `p4d precompute` to fill it"
        )


_CLIP_FIELDS = ("frame_index", "timestamp", "video")


def _fields(store: CacheStore, fields: Sequence[str] | None) -> tuple[str, ...]:
    known = ("f4d", *store.spec.modalities, *_CLIP_FIELDS)
    if fields is None:
        return known
    unknown = [f for f in fields if f not in known]
    if unknown:
        raise ClipNotAvailableError(f"clips of {store.url}: no field {unknown[0]!r}; this store has {', '.join(known)}")
    return tuple(dict.fromkeys(fields))


def _empty(store: CacheStore, name: str) -> np.ndarray:
    spec = store.spec
    if name == "f4d":
        return np.zeros((0,) + spec.latent_shape, np.float32)
    if name in spec.modalities:
        return np.zeros((0,) + spec.map_shape(name), np.float32)
    if name == "video":
        return np.zeros((0,), np.int32)
    return np.zeros((0, spec.num_frames), np.int32 if name == "frame_index" else np.float32)


def _read_latents(store: CacheStore, uniq: np.ndarray, decode: bool) -> dict[str, np.ndarray]:
    """F_4D of done clips ``uniq``: decoded (``f4d``), or the stored parts. Clips the codec's
    self-check sent to the bfloat16 fallback (``clips/latent_codec`` = 2) come from
    ``latents/f4d_bf16``; as parts, ``f4d_level`` (B,) and, when a clip of the batch fell back,
    ``f4d_bf16`` (B, ...) uint16 (zeros for the other clips) come along."""
    codec = LATENT_CODECS[store.spec.latent_codec]
    parts = {p.name: _read_rows(store, f"latents/{p.name}", uniq)
             for p in codec.stored_parts(store.spec.latent_codec_version)}
    levels = (_read_rows(store, "clips/latent_codec", uniq) if "clips/latent_codec" in store.layouts
              else None)
    fallback = np.flatnonzero(levels == 2) if levels is not None else np.zeros(0, np.int64)
    bf16 = None
    if fallback.size:
        bf16 = np.zeros(parts["f4d"].shape, np.uint16)
        bf16[fallback] = _read_rows(store, f"latents/{FALLBACK_PART}", uniq[fallback])
    if not decode:
        if levels is not None:
            parts["f4d_level"] = levels
        if bf16 is not None:
            parts[FALLBACK_PART] = bf16
        return parts
    out = codec.decode(parts)
    if bf16 is not None:
        out[fallback] = bfloat16_bits_to_float32(bf16[fallback])
    return {"f4d": out}


def read_clips(store: CacheStore, idx: Sequence[int], fields: Sequence[str] | None = None, *,
               decode: bool = True) -> dict[str, np.ndarray]:
    """Decoded targets of clips ``idx``, stacked on a leading axis B.

    Returns ``f4d`` (B, taps, N', h', w', c') float32, each spec map as float32 (``depth``
    (B, N, H, W, 1), ``flow`` (B, N, H, W, 2), ``motion`` (B, N, H, W, 1), ``camray``
    (B, N, h_p, w_p, 6)), ``frame_index`` (B, N) int32, ``timestamp`` (B, N) float32 seconds,
    ``video`` (B,) int32; only ``fields`` of these when given (the others are not read). Raises
    ClipNotAvailableError for out-of-range, pending, failed or unreadable clips (naming the
    clip and the reason) and for a field the store does not have.

    ``decode=False`` returns what is stored instead, for a decode on the trainer's device
    (:mod:`p4d.train.device_decode`): the latent codec's parts (``f4d`` int8 residuals,
    ``f4d_scale``, ``f4d_offset`` for dpcm-channel; ``f4d_level`` and ``f4d_bf16`` for the
    self-check's fallback, see :func:`_read_latents`) and the maps as stored: float16, or for a
    quant16 store int16 codes ``<m>`` with ``<m>_quant`` (B, 2, ch) (step, offset; step NaN: the
    clip's codes are float16 bits), see :mod:`p4d.cache_schema.map_codecs`.
    """
    names = _fields(store, fields)
    clips = _clip_indices(store, idx)
    uniq, inverse = np.unique(clips, return_inverse=True)
    _check_done(store, uniq)
    out: dict[str, np.ndarray] = {}
    for name in names:
        if not uniq.size and decode:
            out[name] = _empty(store, name)
        elif name == "f4d":
            out.update(_read_latents(store, uniq, decode))
        elif name in _CLIP_FIELDS:
            out[name] = _read_rows(store, f"clips/{name}", uniq)
        elif store.spec.map_codec == "quant16":
            rows = _read_rows(store, f"maps/{name}", uniq)
            quant = _read_rows(store, f"maps/{quant_part(name)}", uniq)
            if decode:
                out[name] = decode_map(name, rows, quant)
            else:
                out[name], out[quant_part(name)] = rows, quant
        else:
            rows = _read_rows(store, f"maps/{name}", uniq)
            out[name] = rows.astype(np.float32) if decode else rows
    if uniq.size != clips.size or not np.array_equal(uniq, clips):
        out = {k: v[inverse] for k, v in out.items()}
    return out


def read_clip(store: CacheStore, i: int, fields: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """Decoded targets of clip ``i`` (as :func:`read_clips` without the leading axis; ``video`` 0-d)."""
    if isinstance(i, bool) or not isinstance(i, (int, np.integer)):
        raise ClipNotAvailableError(f"clip {i!r} of {store.url}: expected an int clip index")
    return {k: v[0] for k, v in read_clips(store, [int(i)], fields).items()}
