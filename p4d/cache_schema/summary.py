"""A readable summary of a store: arrays, status counts, failure reasons, bytes on disk vs raw float32."""

from __future__ import annotations

import math
import posixpath
from collections import defaultdict

import numpy as np

from p4d.cache_schema.codecs import LATENT_CODECS
from p4d.cache_schema.contract import HEADS_FILE
from p4d.cache_schema.fidelity import CODEC_LEVELS
from p4d.cache_schema.labels import teacher_label
from p4d.cache_schema.layout import GROUPS, STATUS_DONE
from p4d.cache_schema.map_codecs import MAP_QUANT
from p4d.cache_schema.store import FIDELITY_DIR, CacheStore, _fs

__all__ = ["format_summary", "disk_usage", "fidelity_records", "padded_line", "padded_videos", "store_bytes"]


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def _codec_chain(arr) -> str:
    names = []
    for c in getattr(arr, "compressors", ()) or ():
        kind = type(c).__name__.replace("Codec", "").lower()
        if kind == "zstd":
            names.append(f"zstd({c.level})")
        elif kind == "blosc":
            shuffle = getattr(c.shuffle, "value", c.shuffle)
            cname = getattr(c.cname, "value", c.cname)
            names.append(f"blosc({cname}{c.clevel},{shuffle})")
        else:
            names.append(kind)
    return "+".join(names) or "none"


def _largest_first(groups: dict) -> list[tuple]:
    """(key, ids) of a grouping, the largest group first."""
    return sorted(groups.items(), key=lambda kv: -len(kv[1]))


def _first_ids(ids: list[int], shown: int = 8) -> str:
    return ", ".join(map(str, ids[:shown])) + (", ..." if len(ids) > shown else "")


def disk_usage(store: CacheStore) -> dict[str, int]:
    """Bytes on disk per array path and per group (shard files + metadata), e.g. ``maps/depth``, ``maps``."""
    fs, root = _fs(store.url)
    out = {}
    for path in list(store.layouts) + list(GROUPS):
        full = posixpath.join(root, path)
        out[path] = int(fs.du(full, total=True)) if fs.exists(full) else 0
    return out


def store_bytes(url: str) -> tuple[int, int]:
    """(bytes of the whole store on disk, bytes of its ``heads.safetensors``): the heads file holds
    the D_m weights once per store (1.3 GB at l4p), apart from the per-clip arrays."""
    fs, root = _fs(url)
    if not fs.exists(root):
        return 0, 0
    heads = posixpath.join(root, HEADS_FILE)
    return int(fs.du(root, total=True)), int(fs.size(heads)) if fs.exists(heads) else 0


def fidelity_records(store: CacheStore, side_records: list[tuple[str, dict]] | None = None) -> dict[int, dict]:
    """The codec self-check's figures per done clip (``fidelity/shard-*.json``; see
    :mod:`p4d.cache_schema.fidelity`): mean/worst token cosine, relative error per tap, level.
    ``side_records``: those files, when the caller has read them already (:func:`_fidelity_side_records`)."""
    return store.clip_records(FIDELITY_DIR, STATUS_DONE, "fidelity", side_records)


def _fidelity_side_records(store: CacheStore) -> list[tuple[str, dict]]:
    """Every ``fidelity/shard-*.json`` as (path, record): read once per summary, used by each section."""
    return store._shard_side_records(FIDELITY_DIR, "fidelity")


def _channel_lines(side: list[tuple[str, dict]], records: dict[int, dict], q) -> list[str]:
    """The channel-balanced criterion (per-channel R^2, lowest tap's mean / worst channel) of the
    clips that recorded it, and the thresholds each shard was checked with (its fidelity record)."""
    have = [r for r in records.values() if "channel_r2_mean" in r]
    if not have:
        return []
    lines = [f"    channel R2, mean    {q(np.array([r['channel_r2_mean'] for r in have]))}  (lowest tap's mean over channels)",
             f"    channel R2, worst   {q(np.array([r['channel_r2_worst'] for r in have]))}  (worst channel)"]
    thresholds: dict[tuple, int] = defaultdict(int)
    for _, record in side:
        policy = record.get("policy") or {}
        if "min_channel_r2_mean" in policy:
            thresholds[(policy["min_channel_r2_mean"], policy.get("min_channel_r2_worst"))] += 1
    for (m, w), n in sorted(thresholds.items()):
        lines.append(f"    thresholds (--min-channel-r2): mean >= {m}, worst >= {w} ({n} shards)")
    return lines


def _fidelity_lines(store: CacheStore, runs: dict[int, dict], side: list[tuple[str, dict]]) -> list[str]:
    records = fidelity_records(store, side)
    if not records:
        return []
    mean = np.array([r["mean_cosine"] for r in records.values()])
    worst = np.array([r["worst_cosine"] for r in records.values()])
    levels = np.array([r.get("level", 0) for r in records.values()])
    q = lambda a: " / ".join(f"{v:.4f}" for v in np.quantile(a, [0.0, 0.5, 1.0]))  # noqa: E731
    lines = ["", f"  F_4D codec self-check ({len(records)} checked clips; min / median / max):",
             f"    mean token cosine   {q(mean)}", f"    worst token cosine  {q(worst)}"]
    lines += _channel_lines(side, records, q)
    for level, name in CODEC_LEVELS.items():
        lines.append(f"    level {level} ({name}): {int((levels == level).sum())} clips")
    thresholds: dict[tuple, int] = defaultdict(int)  # (mean, worst) -> shards checked with them
    for run in runs.values():
        if isinstance(run.get("min_cosine"), list) and len(run["min_cosine"]) == 2:
            thresholds[tuple(run["min_cosine"])] += 1
    for (m, w), n in sorted(thresholds.items()):
        lines.append(f"    thresholds (--min-cosine): mean >= {m}, worst >= {w} ({n} shards)")
    return lines


def map_codec_records(store: CacheStore, side_records: list[tuple[str, dict]] | None = None,
                      ) -> dict[str, dict[int, tuple[float, bool]]]:
    """quant16 stores: per map, done clip -> (max error as stored, stored as float16 after missing
    the bound), from the ``maps`` entry of ``fidelity/shard-*.json`` (written by ``write_shard``;
    ``side_records``: those files, when already read)."""
    status = store.clip_status()
    out: dict[str, dict[int, tuple[float, bool]]] = defaultdict(dict)
    for _, record in _fidelity_side_records(store) if side_records is None else side_records:
        shard = record.get("shard")
        if not isinstance(record.get("maps"), dict) or not isinstance(shard, int):
            continue
        first = store.shard_clips(shard).start
        for m, entry in record["maps"].items():
            fallback = set(entry.get("float16", []))
            for i, err in enumerate(entry.get("max_error", [])):
                clip = first + i
                if err is not None and 0 <= clip < store.num_clips and status[clip] == STATUS_DONE:
                    out[m][clip] = (float(err), clip in fallback)
    return dict(out)


def _map_codec_lines(store: CacheStore, side: list[tuple[str, dict]]) -> list[str]:
    """The quant16 map codec's check: max error per clip against each map's bound, and the clips
    that fell back to float16."""
    if store.spec.map_codec != "quant16":
        return []
    records = map_codec_records(store, side)
    if not records:
        return []
    lines = ["", "  map codec quant16 self-check (max error per clip vs its float32 source; min / median / max):"]
    for m in store.spec.modalities:
        got = records.get(m, {})
        if not got:
            continue
        rule = MAP_QUANT[m]
        errs = np.array([e for e, _ in got.values()])
        fallback = [c for c, (_, f) in got.items() if f]
        q = " / ".join(f"{v:.3g}" for v in np.quantile(errs, [0.0, 0.5, 1.0]))
        kind = "relative" if rule.log else rule.unit
        lines.append(f"    {m:7s} {q} {kind} (bound {rule.bound:g}); {len(got) - len(fallback)} clips quant16, "
                     f"{len(fallback)} float16" + (f" (missed the bound: clips {_first_ids(fallback)})" if fallback else ""))
    return lines


def _clamp_lines(store: CacheStore, runs: dict[int, dict]) -> list[str]:
    """How many values precompute clamped to the stored dtype's finite range (``clamped`` of the run
    records: clip -> target -> count; a float16 map past 65504 is stored as 65504, never inf)."""
    per_target: dict[str, int] = defaultdict(int)
    clips = 0
    for run in runs.values():
        for counts in (run.get("clamped") or {}).values():
            clips += 1
            for target, n in counts.items():
                per_target[target] += int(n)
    if not per_target:
        return []
    detail = ", ".join(f"{t} {n}" for t, n in sorted(per_target.items()))
    return [f"    {sum(per_target.values())} values clamped to the {store.spec.map_dtype} range in {clips} clips "
            f"({detail}; runs/shard-*.json, field clamped)"]


def padded_videos(store: CacheStore) -> list:
    """The usable videos with fewer frames than a clip's N: their one clip repeats frames
    (``numpy.round(linspace(0, n - 1, N))`` has a repeat exactly when n < N; p4d.video.sampling)."""
    n = store.spec.num_frames
    return [v for v in store.videos if 0 < v.num_frames < n]


def padded_line(store: CacheStore) -> str:
    """One line about :func:`padded_videos`, '' when there are none."""
    short = padded_videos(store)
    if not short:
        return ""
    examples = ", ".join(f"{v.path} ({v.num_frames})" for v in short[:3]) + (", ..." if len(short) > 3 else "")
    return (f"{len(short)} videos have fewer than N={store.spec.num_frames} frames: their one clip repeats frames "
            f"to fill N (done, not failed): {examples}")


def format_summary(store: CacheStore) -> str:
    """Header (spec, codec), a table of every array (shape, dtype, chunks, shards, codec, bytes on
    disk, raw float32 bytes of the written clips, ratio), totals per group, counts by status and
    failure reasons grouped by reason, the videos planned with a warning (e.g. truncated:
    frames present vs declared), and the device/dtype/GPU each shard ran on. ``raw`` counts latents and maps of done + failed clips as
    float32 (the clips group at its own dtypes); codec side arrays (scales) count as overhead."""
    spec = store.spec
    codec = LATENT_CODECS[spec.latent_codec]
    counts = store.status()
    written = counts["done"] + counts["failed"]
    lines = [
        f"p4d cache {store.url}",
        f"  schema v{store.attrs.get('schema_version')} (written by p4d {store.attrs.get('p4d_version', '?')}); "
        f"{teacher_label(spec)}",
        f"  {store.num_clips} clips from {len(store.videos)} videos in {store.num_shards} shards of S={spec.clips_per_shard}; "
        f"sampling N={spec.num_frames}, policy {spec.sampling.get('policy')}, frame stride {spec.sampling.get('frame_stride')}; "
        f"input {spec.height}x{spec.width}",
        f"  F_4D taps {list(spec.taps)}, latent grid N'xh'xw'xc' = {spec.latent_frames}x{spec.latent_height}x"
        f"{spec.latent_width}x{spec.latent_dim}; maps {', '.join(spec.modalities) or 'none'} "
        f"({'quant16: int16 codes within a stated bound, float16 fallback' if spec.map_codec == 'quant16' else spec.map_dtype})",
        f"  latent codec {codec.name} format v{spec.latent_codec_version}"
        + ("" if spec.latent_codec_version == codec.version else
           f" (read-only: this p4d writes v{codec.version}; v1 has no level-1 outlier arrays)")
        + f": {codec.description}",
        f"  status: {counts['done']} done, {counts['pending']} pending, {counts['failed']} failed "
        f"(total {counts['total']})",
        "",
    ]
    usage = disk_usage(store)
    header = ("array", "shape", "dtype", "chunks", "shards", "codec", "on disk", "raw f32", "ratio")
    rows = [header]
    group_disk = {g: usage[g] for g in GROUPS}
    group_raw: dict[str, int] = defaultdict(int)
    for path, lay in store.layouts.items():
        try:
            arr = store.array(path)
            shape, dtype, chunks, shards, chain = arr.shape, str(arr.dtype), arr.chunks, arr.shards, _codec_chain(arr)
        except Exception:  # noqa: BLE001 - summary shows what is there
            shape, dtype, chunks, shards, chain = "MISSING", "-", "-", "-", "-"
        per_clip = math.prod(lay.shape[1:]) * lay.raw_itemsize
        raw = per_clip * (store.num_clips if lay.group == "clips" else written)
        disk = usage[path]
        group_raw[lay.group] += raw
        ratio = f"{disk / raw:.3f}" if raw else "-"
        rows.append((path, str(tuple(shape)) if shape != "MISSING" else shape, dtype, str(tuple(chunks)) if chunks != "-" else "-",
                     str(tuple(shards)) if shards not in ("-", None) else "-", chain, human_bytes(disk),
                     human_bytes(raw) if raw else "-", ratio))
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(header))]
    for r in rows:
        lines.append("  " + "  ".join(str(v).ljust(w) for v, w in zip(r, widths)).rstrip())
    lines.append("")
    lines.append(f"  bytes on disk vs raw float32 ({written} written clips for latents/maps):")
    tot_disk = tot_raw = 0
    for g in GROUPS:
        d, r = group_disk[g], group_raw[g]
        tot_disk += d
        tot_raw += r
        per = f", {human_bytes(d / written)}/clip" if written and g != "clips" else ""
        lines.append(f"    {g:8s} {human_bytes(d):>10s} on disk vs {human_bytes(r):>10s} raw  ratio "
                     f"{(d / r if r else float('nan')):.3f}{per}")
    lines.append(f"    {'arrays':8s} {human_bytes(tot_disk):>10s} on disk vs {human_bytes(tot_raw):>10s} raw  ratio "
                 f"{(tot_disk / tot_raw if tot_raw else float('nan')):.3f}")
    whole, heads = store_bytes(store.url)
    lines.append(f"    {'heads':8s} {human_bytes(heads):>10s} on disk ({HEADS_FILE}: the D_m weights, once per store)"
                 if heads else f"    {'heads':8s} {'none':>10s} ({HEADS_FILE} not written yet)")
    lines.append(f"    {'store':8s} {human_bytes(whole):>10s} on disk in all (arrays, heads, videos.json, side files)")
    runs = store.shard_runs()
    if runs:
        lines.append("")
        lines.append(f"  computed on ({len(runs)} of {store.num_shards} shards recorded):")
        by_place: dict[tuple, list[int]] = defaultdict(list)
        for shard, run in runs.items():
            by_place[(run.get("device", "?"), run.get("dtype", "?"), run.get("gpu", "?"))].append(shard)
        for (device, dtype, gpu), shards in _largest_first(by_place):
            lines.append(f"    {len(shards):5d} shards on {device} {dtype} (GPU: {gpu})  (shards {_first_ids(shards)})")
        lines += _clamp_lines(store, runs)
    runtimes = store.attrs.get("teacher_runtime") or []
    if len(runtimes) > 1:  # p4d precompute --allow-mixed-precision (p4d.precompute.runtime)
        mixed = ", ".join(f"{r.get('dtype')} on {r.get('device')}" for r in runtimes if isinstance(r, dict))
        lines.append(f"    MIXED teacher runtimes (--allow-mixed-precision): {mixed}; runs/shard-*.json say which shard")
    side = _fidelity_side_records(store)  # read once: the F_4D and the map sections both use them
    lines += _fidelity_lines(store, runs, side)
    lines += _map_codec_lines(store, side)
    padded = padded_line(store)
    if padded:
        lines += ["", f"  padded clips: {padded}"]
    warned = [v for v in store.videos if v.note and v.num_frames > 0]
    if warned:
        lines.append("")
        lines.append(f"  warnings ({len(warned)} videos planned from fewer frames than their container declares):")
        lines += [f"    {v.path}: {v.note}" for v in warned[:20]]
        if len(warned) > 20:
            lines.append(f"    ... and {len(warned) - 20} more (videos.json, field note)")
    failures = store.failures()
    if failures:
        lines.append("")
        lines.append(f"  failures ({len(failures)} clips):")
        by_reason: dict[str, list[int]] = defaultdict(list)
        for clip, reason in failures.items():
            by_reason[reason].append(clip)
        for reason, clips in _largest_first(by_reason):
            lines.append(f"    {len(clips):5d} x {reason}  (clips {_first_ids(clips)})")
    return "\n".join(lines)
