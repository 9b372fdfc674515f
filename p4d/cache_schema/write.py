"""Write one shard of clips: the only way data enters a store.

Exactly one writer owns a shard and writes it whole. Order, so that a kill at any point leaves
the shard's clips not done and a reader never sees a half-written clip as done:

1. the shard's status file is deleted, so its clips read as pending (a rewrite of a done
   shard first un-marks it);
2. every data array's whole shard is written (one shard file per array), after deleting the
   old shard file: zarr reads an existing shard before writing into it, and a torn one would
   make the rewrite fail;
3. the failure reasons (``failures/shard-{id}.json``), or the removal of a stale record;
4. the status shard, last. A status shard torn by a kill fails its CRC32C check on read and
   reads as pending (:meth:`CacheStore.read_status`), so it is rewritten, never trusted.
"""

from __future__ import annotations

import dataclasses
import json
import logging

import numpy as np

from p4d.cache_schema.codecs import LATENT_CODECS
from p4d.cache_schema.fidelity import FALLBACK_PART, FidelityPolicy, encode_checked
from p4d.cache_schema.layout import STATUS_DONE, STATUS_FAILED
from p4d.cache_schema.map_codecs import encode_map, is_fallback, quant_part
from p4d.cache_schema.store import FAILURES_DIR, FIDELITY_DIR, CacheStore
from p4d.errors import CacheSchemaError

log = logging.getLogger(__name__)

_FIXED_KEYS = ("f4d", "frame_index", "timestamp")
DEFAULT_FIDELITY = FidelityPolicy()


def failures_file(shard_id: int) -> str:
    return f"{FAILURES_DIR}/shard-{int(shard_id)}.json"


def fidelity_file(shard_id: int) -> str:
    """Side file of one shard's F_4D self-check figures (:mod:`p4d.cache_schema.fidelity`)."""
    return f"{FIDELITY_DIR}/shard-{int(shard_id)}.json"


def expected_shard_arrays(store: CacheStore, shard_id: int) -> dict[str, tuple[tuple[int, ...], str]]:
    """Key -> (shape, kind) that :func:`write_shard` expects for ``shard_id``; kind is float or int."""
    spec = store.spec
    s = len(store.shard_clips(shard_id))
    out = {"f4d": ((s,) + spec.latent_shape, "float")}
    for m in spec.modalities:
        out[m] = ((s,) + spec.map_shape(m), "float")
    out["frame_index"] = ((s, spec.num_frames), "int")
    out["timestamp"] = ((s, spec.num_frames), "float")
    return out


def _validate_parts(store: CacheStore, where: str, parts, n: int) -> dict[str, np.ndarray]:
    """Already-encoded F_4D parts (a dict named like the codec's parts), checked against the codec."""
    codec = LATENT_CODECS[store.spec.latent_codec]
    names = sorted(p.name for p in codec.stored_parts(store.spec.latent_codec_version))
    if sorted(k for k in parts if k not in ENCODED_EXTRAS) != names:
        raise CacheSchemaError(f"{where}: encoded 'f4d' parts {sorted(parts)}, expected codec {codec.name!r}'s {names}")
    out = {}
    for part in codec.stored_parts(store.spec.latent_codec_version):
        a = np.asarray(parts[part.name])
        shape = part.shape((n,) + store.spec.latent_shape)
        if a.shape != shape or a.dtype != np.dtype(part.dtype):
            raise CacheSchemaError(f"{where}: encoded part {part.name!r} is {a.shape} {a.dtype}, "
                                   f"expected {shape} {part.dtype}")
        out[part.name] = a
    out.update({k: parts[k] for k in ENCODED_EXTRAS if k in parts})
    return out


def _validate(store: CacheStore, shard_id: int, arrays: dict) -> dict[str, np.ndarray]:
    where = f"write_shard(shard {shard_id} of {store.url})"
    if not isinstance(arrays, dict):
        raise CacheSchemaError(f"{where}: expected a dict of arrays, got {type(arrays).__name__}")
    expected = expected_shard_arrays(store, shard_id)
    missing = sorted(set(expected) - set(arrays))
    unknown = sorted(set(arrays) - set(expected))
    if missing or unknown:
        raise CacheSchemaError(f"{where}: expected keys {sorted(expected)}; missing {missing}, unexpected {unknown}")
    out = {}
    for key, (shape, kind) in expected.items():
        if key == "f4d" and isinstance(arrays[key], dict):
            out[key] = _validate_parts(store, where, arrays[key], shape[0])
            continue
        a = np.asarray(arrays[key])
        if a.shape != shape:
            raise CacheSchemaError(f"{where}: {key!r} has shape {a.shape}, expected {shape}")
        ok = np.issubdtype(a.dtype, np.floating) if kind == "float" else np.issubdtype(a.dtype, np.integer)
        if not ok:
            raise CacheSchemaError(f"{where}: {key!r} has dtype {a.dtype}, expected a {kind} dtype")
        out[key] = a
    return out


def _zero_failed_parts(store: CacheStore, parts: dict[str, np.ndarray], failed_rows: np.ndarray) -> dict:
    """Failed rows hold the encoding of an all-zero clip (as the float path stores them); in place."""
    if not failed_rows.size:
        return parts
    zero = LATENT_CODECS[store.spec.latent_codec].encode(np.zeros(store.spec.latent_shape, np.float32))
    for name, value in zero.items():
        parts[name][failed_rows] = value
    return parts


#: keys an encoded ``f4d`` dict may hold beside the codec's parts: the bfloat16 fallback rows,
#: each clip's codec level (``clips/latent_codec``) and each clip's self-check figures
ENCODED_EXTRAS = (FALLBACK_PART, "levels", "fidelity")


def _pre_encoded(store: CacheStore, enc: dict, failed_rows: np.ndarray):
    """(parts, bf16 or None, levels, fidelity stats) of an already-encoded shard, failed rows cleared
    as the float path stores them."""
    codec = LATENT_CODECS[store.spec.latent_codec]
    parts = _zero_failed_parts(store, {p.name: enc[p.name] for p in codec.stored_parts(store.spec.latent_codec_version)},
                               failed_rows)
    n = len(parts[codec.parts[0].name])
    bf16 = enc.get(FALLBACK_PART)
    levels = np.asarray(enc.get("levels", np.zeros(n, np.uint8)), np.uint8).copy()
    stats = list(enc.get("fidelity", [None] * n))
    if bf16 is not None:
        bf16 = np.asarray(bf16, np.uint16)
        if bf16.shape != (n,) + store.spec.latent_shape:
            raise CacheSchemaError(f"write_shard: encoded part {FALLBACK_PART!r} is {bf16.shape}, "
                                   f"expected {(n,) + store.spec.latent_shape}")
        bf16[failed_rows] = 0
    if levels.shape != (n,) or len(stats) != n:
        raise CacheSchemaError(f"write_shard: encoded 'levels'/'fidelity' must hold one entry per clip ({n})")
    levels[failed_rows] = 0
    for i in failed_rows:
        stats[int(i)] = None
    return parts, bf16, levels, stats


def write_shard(store: CacheStore, shard_id: int, arrays: dict[str, np.ndarray],
                failures: dict[int, str] | None = None, *,
                fidelity: FidelityPolicy | None = DEFAULT_FIDELITY) -> None:
    """Write every clip of shard ``shard_id`` and mark them done (or failed), status last.

    ``arrays``: ``f4d`` (S, taps, N', h', w', c') float (encoded clip by clip with the store's
    codec), or the codec's parts already encoded (a dict, e.g. by the teacher's device),
    one map per spec modality (``depth`` (S, N, H, W, 1), ``flow`` (S, N, H, W, 2), ``motion``
    (S, N, H, W, 1), ``camray`` (S, N, h_p, w_p, 6)) float, ``frame_index`` (S, N) int,
    ``timestamp`` (S, N) float; S = clips in the shard (the last shard may be short).
    ``failures``: GLOBAL clip index -> reason; those rows are ignored (zeros / -1 / NaN stored).
    ``fidelity``: each good clip's encoded F_4D is decoded and checked against it, falling back to
    a finer step or bfloat16 below the policy's cosines (:mod:`p4d.cache_schema.fidelity`); None
    skips the check.
    """
    store._require_writable(f"write_shard({shard_id})")
    rng = store.shard_clips(shard_id)
    where = f"write_shard(shard {shard_id} of {store.url})"
    failures = {} if failures is None else dict(failures)
    for clip, reason in failures.items():
        if isinstance(clip, bool) or not isinstance(clip, (int, np.integer)) or int(clip) not in rng:
            raise CacheSchemaError(f"{where}: failure for clip {clip!r}, expected a global clip index in "
                                   f"[{rng.start}, {rng.stop})")
        if not isinstance(reason, str):
            raise CacheSchemaError(f"{where}: failure reason of clip {clip} must be a str, got {type(reason).__name__}")
    failures = {int(k): v for k, v in failures.items()}
    data = _validate(store, shard_id, arrays)
    failed_rows = np.array(sorted(c - rng.start for c in failures), dtype=np.int64)
    good = np.ones(len(rng), dtype=bool)
    good[failed_rows] = False

    codec = LATENT_CODECS[store.spec.latent_codec]
    if isinstance(data["f4d"], dict):  # encoded (and self-checked) where the teacher ran
        parts, bf16, levels, fidelity_stats = _pre_encoded(store, data["f4d"], failed_rows)
    else:
        f4d = np.array(data["f4d"], dtype=np.float32)  # copy: failed rows are zeroed
        f4d[failed_rows] = 0.0
        if not codec.lossless_nan:
            bad = [rng.start + int(i) for i in np.flatnonzero(~np.isfinite(f4d).reshape(len(rng), -1).all(axis=1))]
            if bad:
                raise CacheSchemaError(f"{where}: f4d of clips {bad} holds NaN/Inf, which codec {codec.name!r} cannot "
                                       "store; pass them in failures (or use a float codec)")
        parts, bf16, levels, fidelity_stats = encode_checked(codec.name, f4d, good, fidelity)

    sl = slice(rng.start, rng.stop)

    def put(path: str, values: np.ndarray) -> None:
        store.delete_shard_file(path, shard_id)
        store.array(path)[sl] = values

    # 1. un-mark: a kill during a rewrite must not leave the old "done" over new, partial data.
    store.delete_shard_file("clips/status", shard_id)
    # 2. data, one whole shard per array.
    for name, part in parts.items():
        put(f"latents/{name}", part)
    layouts = store.layouts
    if f"latents/{FALLBACK_PART}" in layouts:
        if bf16 is not None:
            put(f"latents/{FALLBACK_PART}", bf16)
        else:
            store.delete_shard_file(f"latents/{FALLBACK_PART}", shard_id)
        put("clips/latent_codec", levels)
    map_dtype = np.dtype(store.spec.map_dtype)
    map_record = {}
    for m in store.spec.modalities:
        if store.spec.map_codec == "quant16":  # codes + (step, offset), each clip checked against its bound
            values, quant, err = encode_map(m, data[m])
            quant[failed_rows] = 0.0
            put(f"maps/{quant_part(m)}", quant)
            map_record[m] = {"max_error": [None if i in failed_rows else float(e) if np.isfinite(e) else "inf"
                                           for i, e in enumerate(err)],  # "inf": NaN/Inf in the source
                             "float16": [rng.start + int(i) for i in np.flatnonzero(is_fallback(quant) & good)]}
        else:
            with np.errstate(over="ignore"):
                values = data[m].astype(map_dtype, copy=bool(failed_rows.size))
        values[failed_rows] = 0
        put(f"maps/{m}", values)
    frame_index = data["frame_index"].astype(np.int32)
    frame_index[failed_rows] = -1
    put("clips/frame_index", frame_index)
    timestamp = data["timestamp"].astype(np.float32)
    timestamp[failed_rows] = np.nan
    put("clips/timestamp", timestamp)
    # 3. the codec's self-check figures and the failure reasons (before the status that points to them).
    if any(st is not None for st in fidelity_stats) or map_record:
        record = {"shard": int(shard_id), "codec": codec.name,
                  "policy": None if fidelity is None else dataclasses.asdict(fidelity),
                  "clips": {str(rng.start + i): st for i, st in enumerate(fidelity_stats) if st is not None}}
        if map_record:  # quant16: each map's max error per clip (shard order) and the clips stored as float16
            record["maps"] = map_record
        store.write_side_file(fidelity_file(shard_id), json.dumps(record, indent=1).encode())
    if failures:
        record = {"shard": int(shard_id), "clips": {str(k): v for k, v in sorted(failures.items())}}
        store.write_side_file(failures_file(shard_id), json.dumps(record, indent=1).encode())
    else:
        store.remove_side_file(failures_file(shard_id))
    # 4. status last.
    store.array("clips/status")[sl] = np.where(good, STATUS_DONE, STATUS_FAILED).astype(np.uint8)
    log.debug("%s: %d done, %d failed", where, int(good.sum()), len(failures))


def mark_shard_failed(store: CacheStore, shard_id: int, failures: dict[int, str]) -> None:
    """Record every clip of shard ``shard_id`` failed without encoding any data (e.g. a shard whose
    task never succeeded, or whose clips all failed): the status is un-marked, the shard's data files
    are deleted (failed clips then read as the fill values: frame_index -1, timestamp and maps NaN),
    the reasons written, the status last. ``failures``: GLOBAL clip index -> reason, every clip."""
    store._require_writable(f"mark_shard_failed({shard_id})")
    rng = store.shard_clips(shard_id)
    if sorted(int(c) for c in failures) != list(rng):
        raise CacheSchemaError(f"mark_shard_failed(shard {shard_id} of {store.url}): expected a reason for every "
                               f"clip in [{rng.start}, {rng.stop}), got clips {sorted(failures)}")
    store.delete_shard_file("clips/status", shard_id)
    for path in store.layouts:
        if path not in ("clips/status", "clips/video"):
            store.delete_shard_file(path, shard_id)
    record = {"shard": int(shard_id), "clips": {str(int(k)): str(v) for k, v in sorted(failures.items())}}
    store.write_side_file(failures_file(shard_id), json.dumps(record, indent=1).encode())
    store.array("clips/status")[rng.start:rng.stop] = np.full(len(rng), STATUS_FAILED, np.uint8)
    log.debug("shard %d of %s: all %d clips recorded failed (no data written)", shard_id, store.url, len(rng))
