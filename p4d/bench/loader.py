"""``p4d bench loader``: clips/s the trainer's read path delivers vs every peer format, per storage speed.

Formats, all holding the same synthetic clips (F_4D + the four maps; ``p4d.bench.latents``):

* ``p4d (targets to device)``: the trainer's CUDA path, ``read_clips(store, batch, decode=False)``
  on a batch of clips of one shard: direct shard reads (:mod:`p4d.cache_schema.shard_read`),
  decompression, int8 residuals + scales and the maps handed over as stored; the decode runs
  on the GPU (:mod:`p4d.train.device_decode`, not host work).
* ``p4d (float32 on host)``: ``read_clips`` decoding to float32 on the CPU (the CPU trainer's path).
* peers, one file per clip, each read and parsed into arrays in its stored dtype, which is what a
  GPU trainer would copy to the device: ``safetensors-bf16`` (Theia-style), ``npy-fp32`` (raw
  float32), ``npz-fp16`` (3DRS-style ``savez_compressed``).

Storage is simulated as one token bucket shared by all readers (each read of n bytes completes
n / bandwidth after the bucket frees up); "page cache" is no throttle. Readers are processes
pinned one per core (1 or 2 cores), started once; configurations are interleaved over the
repeats; the table reports the median clips/s (spread = (max - min) / median) and the host
CPU-ms per clip (``time.process_time`` of the readers). Goal: at every bandwidth and core count
the p4d trainer path delivers >= the best peer's clips/s, with <= 20 CPU-ms per clip on the host.
A ceiling row gives the time to decompress one clip's chunks alone (numcodecs, the store's codec
settings): the least CPU any reader of these bytes spends.

A read-amplification row counts the bytes the direct reader asks the filesystem for when it reads
a shuffled batch of 8 clips out of a 64-clip shard (tiny shapes, every array ``read_clips``
reads), against the bytes of the wanted chunks (from the shard indexes): goal <= 1.2 (coalesced
ranges, :func:`p4d.cache_schema.shard_read.coalesce`). The same batch read as one byte span
(``max_gap=slack=inf``, the reader before issue 22) is printed beside it.
"""

from __future__ import annotations

import io
import multiprocessing as mp
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from p4d.bench.harness import BenchResult, Goal, Row, time_fn
from p4d.bench.peers import write_peer
from p4d.bench.synthetic_store import SHAPES, build_store, files_under, synthetic_clips
from p4d.cache_schema import DEFAULT_LATENT_CODEC, open_store

BANDWIDTHS: dict[str, float | None] = {"page cache": None, "1 GB/s": 1e9, "300 MB/s": 300e6, "100 MB/s": 100e6}
CORES = (1, 2)
P4D_DEVICE, P4D_HOST = "p4d (targets to device)", "p4d (float32 on host)"
PEERS = ("safetensors-bf16", "npy-fp32", "npz-fp16")
FORMATS = (P4D_DEVICE, P4D_HOST) + PEERS
BATCH = 4  # clips per read_clips call (one shard-local batch of the trainer)
AMP_BATCH, AMP_SHARD = 8, 64  # read amplification: a shuffled batch of 8 out of a 64-clip shard
AMP_GOAL = Goal("<=", 1.2)
GOAL = Goal(">=", 1.0)
CPU_GOAL_MS = 20.0


# --- the simulated storage -------------------------------------------------------------------


class Bucket:
    """Storage of ``bandwidth`` bytes/s shared by every reader process (None: no limit)."""

    def __init__(self, free_at, lock):
        self.free_at, self.lock, self.bandwidth = free_at, lock, None

    def charge(self, nbytes: int) -> None:
        if not self.bandwidth:
            return
        with self.lock:
            start = max(time.monotonic(), self.free_at.value)
            self.free_at.value = done = start + nbytes / self.bandwidth
        delay = done - time.monotonic()
        if delay > 0:
            time.sleep(delay)


class ThrottledFS:
    """The store's filesystem for the direct shard reader, charging every byte read to the bucket."""

    def __init__(self, fs, bucket: Bucket):
        self.fs, self.bucket = fs, bucket

    def cat_file(self, path, start=None, end=None):
        data = self.fs.cat_file(path, start=start, end=end)
        self.bucket.charge(len(data))
        return data

    def cat_ranges(self, paths, starts, ends, on_error="return"):
        from p4d.cache_schema.shard_read import read_ranges

        out = []
        for path in dict.fromkeys(paths):  # the direct reader asks for ranges of one file
            spans = [(s, e) for p, s, e in zip(paths, starts, ends) if p == path]
            out.extend(read_ranges(self.fs, path, spans))
        self.bucket.charge(sum(len(d) for d in out))
        return out


class ByteCount:
    """A bucket that only counts the bytes charged to it."""

    def __init__(self):
        self.total = 0

    def charge(self, nbytes: int) -> None:
        self.total += nbytes


def _read_bytes(path: Path, bucket: Bucket) -> bytes:
    with open(path, "rb") as f:
        data = f.read()
    bucket.charge(len(data))
    return data


# --- one reader per format --------------------------------------------------------------------


def _p4d_reader(url: str, bucket: Bucket, decode: bool):
    from p4d.cache_schema import read_clips
    from p4d.cache_schema.read import _direct_reader

    store = open_store(url)
    for path in store.layouts:  # route the direct reads through the simulated storage
        fs, arr = _direct_reader(store, path) or (None, None)
        if arr is not None:
            store.__dict__["_direct"][path] = (ThrottledFS(fs, bucket), arr)
    return lambda clips: read_clips(store, clips, decode=decode)


def _peer_reader(folder: Path, fmt: str, bucket: Bucket):
    from p4d.bench.peers import clip_path

    def safetensors_bf16(clips):
        from safetensors.torch import load

        return [load(_read_bytes(clip_path(folder, fmt, c), bucket)) for c in clips]

    def npy_fp32(clips):
        return [{p.stem: np.lib.format.read_array(io.BytesIO(_read_bytes(p, bucket)))
                 for p in sorted(clip_path(folder, fmt, c).glob("*.npy"))} for c in clips]

    def npz_fp16(clips):
        out = []
        for c in clips:
            with np.load(io.BytesIO(_read_bytes(clip_path(folder, fmt, c), bucket))) as z:
                out.append({k: z[k] for k in z.files})
        return out

    return {"safetensors-bf16": safetensors_bf16, "npy-fp32": npy_fp32, "npz-fp16": npz_fp16}[fmt]


def _reader_main(core: int, tmp: str, url: str, free_at, lock, tasks, results) -> None:
    """A reader process pinned to ``core``: runs (format, bandwidth, items) tasks until None."""
    try:
        os.sched_setaffinity(0, {core})
    except (AttributeError, OSError):
        pass
    bucket = Bucket(free_at, lock)
    readers = {P4D_DEVICE: _p4d_reader(url, bucket, decode=False), P4D_HOST: _p4d_reader(url, bucket, decode=True)}
    readers.update({fmt: _peer_reader(Path(tmp) / fmt, fmt, bucket) for fmt in PEERS})
    for fmt in FORMATS:
        readers[fmt]([0])  # warm-up: imports, open handles
    results.put(("ready", core))
    while (task := tasks.get()) is not None:
        fmt, bandwidth, items, start_at = task
        bucket.bandwidth = bandwidth
        while time.monotonic() < start_at:
            time.sleep(0.0005)
        cpu0, t0 = time.process_time(), time.monotonic()
        n = 0
        for clips in items:
            readers[fmt](clips)
            n += len(clips)
        results.put((core, time.monotonic() - start_at, time.process_time() - cpu0, n))


def _split(n: int, per_shard: int, ncores: int) -> list[list[list[int]]]:
    """Clips 0..n-1 as shard-local batches of up to BATCH clips, dealt round-robin to the readers
    (as the trainer's ranks get shard-local batches)."""
    batches = [list(range(s, min(s + BATCH, n, shard + per_shard)))
               for shard in range(0, n, per_shard) for s in range(shard, min(shard + per_shard, n), BATCH)]
    return [batches[k::ncores] for k in range(ncores)]


def _items(fmt: str, batches: list[list[int]]) -> list[list[int]]:
    """Read units: the batches for p4d (one ``read_clips`` each), one clip per read for peers."""
    return [[c] for b in batches for c in b] if fmt in PEERS else batches


def _numcodecs_equivalent(arr):
    """The numcodecs codec doing what the zarr array's (inner-chunk) compressor does."""
    from numcodecs import Blosc, Zstd
    from zarr.codecs import BloscCodec, ShardingCodec, ZstdCodec

    codecs = arr.metadata.codecs
    if len(codecs) == 1 and isinstance(codecs[0], ShardingCodec):
        codecs = codecs[0].codecs
    for c in codecs:
        if isinstance(c, ZstdCodec):
            return Zstd(level=c.level)
        if isinstance(c, BloscCodec):
            shuffle = {"noshuffle": Blosc.NOSHUFFLE, "shuffle": Blosc.SHUFFLE, "bitshuffle": Blosc.BITSHUFFLE}
            return Blosc(cname=c.cname.value, clevel=c.clevel, shuffle=shuffle[c.shuffle.value], typesize=c.typesize)
    return None


def decompress_only(url: str, repeats: int) -> float:
    """Seconds to decompress one clip's stored chunks in memory with the store's codec settings,
    nothing else (no file reads, no zarr, no dequantisation): the least CPU time any reader of
    these bytes spends on top of reading them."""
    store = open_store(url)
    chunks = []
    for path in store.layouts:
        arr = store.array(path)
        codec = _numcodecs_equivalent(arr)
        if codec is not None:
            chunks.append((codec, codec.encode(np.ascontiguousarray(arr[0:1]))))
    return time_fn(lambda: [codec.decode(data) for codec, data in chunks], repeats=repeats).median


def read_amplification(tmp: str, *, seed: int = 0) -> dict[str, int]:
    """Bytes read for a shuffled batch of AMP_BATCH clips of one AMP_SHARD-clip shard (tiny
    shapes): ``coalesced`` (the reader's defaults), ``one span`` (max_gap = slack = inf), and
    ``needed`` (the wanted chunks' bytes, summed from the shard indexes)."""
    from p4d.cache_schema.read import _direct_reader
    from p4d.cache_schema.shard_read import read_shard_rows, shard_index, wanted_chunks

    shapes = SHAPES["tiny"]
    url = str(Path(tmp) / "amplification.zarr")
    store = build_store(url, shapes, DEFAULT_LATENT_CODEC, list(synthetic_clips(shapes, AMP_SHARD)),
                        clips_per_shard=AMP_SHARD)
    rows = np.sort(np.random.default_rng(seed).permutation(AMP_SHARD)[:AMP_BATCH])
    out = {"coalesced": 0, "one span": 0, "needed": 0}
    for path in store.layouts:
        direct = _direct_reader(store, path)
        if direct is None or path == "latents/f4d_bf16":  # f4d_bf16: written only for fallback clips
            continue
        fs, arr = direct
        out["needed"] += sum(w[4] for w in wanted_chunks(arr, shard_index(fs, arr, 0), 0, rows))
        for name, gap in (("coalesced", None), ("one span", float("inf"))):
            count = ByteCount()
            kw = {} if gap is None else {"max_gap": gap, "slack": gap}
            read_shard_rows(ThrottledFS(fs, count), arr, 0, rows, **kw)
            out[name] += count.total
    return out


def run(size: str, *, repeats: int = 3) -> BenchResult:
    import torch

    torch.set_flush_denormal(True)
    shapes = SHAPES[size]
    result = BenchResult(name="loader", size=size, shapes=shapes.describe(),
                         plot={"x": "bandwidth", "y": "candidate", "group": "series", "xlabel": "storage",
                               "ylabel": "clips/s"})
    clips = list(synthetic_clips(shapes))
    n = len(clips)
    cores = [c for c in CORES if c <= len(os.sched_getaffinity(0))] if hasattr(os, "sched_getaffinity") else [1]
    ctx = mp.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="p4d-bench-loader-") as tmp:
        url = str(Path(tmp) / "cache.zarr")
        store = build_store(url, shapes, DEFAULT_LATENT_CODEC, clips)
        per_shard = store.spec.clips_per_shard
        sizes = {P4D_DEVICE: sum(p.stat().st_size for p in files_under(url)) / n}
        sizes[P4D_HOST] = sizes[P4D_DEVICE]
        for fmt in PEERS:
            paths = write_peer(Path(tmp) / fmt, fmt, clips)
            sizes[fmt] = sum(q.stat().st_size for p in paths for q in ([p] if p.is_file() else files_under(p))) / n
        free_at, lock = ctx.Value("d", 0.0, lock=False), ctx.Lock()
        tasks, results = [ctx.Queue() for _ in cores], ctx.Queue()
        procs = [ctx.Process(target=_reader_main, args=(k, tmp, url, free_at, lock, tasks[k], results), daemon=True)
                 for k in range(max(cores))]
        for p in procs:
            p.start()
        try:
            for _ in procs:
                results.get(timeout=600)
            samples: dict[tuple, list[tuple[float, float]]] = {}
            for _ in range(repeats):
                for bw_name, bw in BANDWIDTHS.items():
                    for ncores in cores:
                        for fmt in FORMATS:
                            free_at.value = 0.0
                            start_at = time.monotonic() + 0.05
                            share = _split(n, per_shard, ncores)
                            for k in range(ncores):
                                tasks[k].put((fmt, bw, _items(fmt, share[k]), start_at))
                            got = [results.get(timeout=600) for _ in range(ncores)]
                            wall = max(g[1] for g in got)
                            cpu = sum(g[2] for g in got)
                            samples.setdefault((bw_name, ncores, fmt), []).append((n / wall, cpu / n))
        finally:
            for q in tasks:
                q.put(None)
            for p in procs:
                p.join(timeout=30)
        decompress_s = decompress_only(url, repeats)
        amp = read_amplification(tmp)

    def med(key):
        rates = [r for r, _ in samples[key]]
        m = statistics.median(rates)
        return m, (max(rates) - min(rates)) / m, statistics.median(c for _, c in samples[key])

    for bw_name in BANDWIDTHS:
        for ncores in cores:
            stats = {fmt: med((bw_name, ncores, fmt)) for fmt in FORMATS}
            for fmt in FORMATS:
                rate, spread, cpu = stats[fmt]
                result.rows.append(Row(f"{fmt}, {bw_name}, {ncores} core(s)", "clips/s", rate, rate, spread=spread,
                                       extra={"series": fmt, "bandwidth": bw_name, "cores": ncores,
                                              "MB/clip": sizes[fmt] / 1e6, "CPU ms/clip": cpu * 1e3}))
            best = max(PEERS, key=lambda f: stats[f][0])
            rate, spread, cpu = stats[P4D_DEVICE]
            result.rows.append(Row(
                f"goal: {P4D_DEVICE} vs best peer ({best}), {bw_name}, {ncores} core(s)", "clips/s", rate,
                stats[best][0], goal=GOAL, spread=spread,
                checks={f"host CPU <= {CPU_GOAL_MS:g} ms/clip ({cpu * 1e3:.1f})": cpu * 1e3 <= CPU_GOAL_MS},
                extra={"series": "goal", "bandwidth": bw_name, "cores": ncores}))
    best_cpu = min(med(("page cache", 1, f))[2] for f in PEERS)
    result.rows.append(Row("ceiling: decompressing one p4d clip's chunks alone (numcodecs) vs the cheapest peer's "
                           "whole read, page cache", "CPU ms/clip", decompress_s * 1e3, best_cpu * 1e3,
                           extra={"series": "ceiling"}))
    result.rows.append(Row(
        f"read amplification: bytes read / bytes needed, shuffled batch of {AMP_BATCH} from a {AMP_SHARD}-clip "
        "shard (tiny shapes, coalesced ranges)", "bytes", amp["coalesced"], amp["needed"], goal=AMP_GOAL,
        extra={"series": "read amplification", "one-span bytes": amp["one span"],
               "one-span ratio": amp["one span"] / amp["needed"]}))
    result.notes.append(
        f"read amplification at batch {AMP_BATCH} of a {AMP_SHARD}-clip shard: {amp['coalesced'] / 1e6:.2f} MB read "
        f"for {amp['needed'] / 1e6:.2f} MB of wanted chunks ({amp['coalesced'] / amp['needed']:.3f}x, index bytes "
        f"included); one byte span over the same chunks (the reader before issue 22) reads "
        f"{amp['one span'] / 1e6:.2f} MB ({amp['one span'] / amp['needed']:.2f}x)")
    result.notes.append(
        f"decompressing one p4d clip takes {decompress_s * 1e3:.1f} ms of CPU, the cheapest peer's whole read "
        f"{best_cpu * 1e3:.1f} ms: where reads are free (page cache) and the cores are the limit, no reader that "
        "decompresses on the host can match an uncompressed format; p4d wins where the storage is the limit")
    result.notes.append(
        f"bytes per clip: " + ", ".join(f"{fmt} {sizes[fmt] / 1e6:.2f} MB" for fmt in (P4D_DEVICE,) + PEERS)
        + f"; p4d reads batches of {BATCH} clips of one shard, peers one file per clip")
    result.notes.append("storage simulated as one shared token bucket over page-cached files (this VM's disk is "
                        "served from host memory); readers pinned one per core; CPU = time.process_time of the readers")
    result.notes.append("synthetic ViT-like latents and natural-statistics maps (p4d.bench.latents); "
                        "real L4P weights were not available")
    return result
