"""Benchmark shapes per ``--size`` and synthetic cache stores / peer-format files built from them.

Sizes (each benchmark prints the shapes it used):

* ``tiny``: the tiny teacher's grid, 4 taps x 8x8x8x64 latents, 16x112x112 maps, 16 clips.
* ``small``: 4 taps x 8x16x16x384 latents, 16x224x224 maps, 16 clips.
* ``paper``: the real L4P grid, 4 taps x 8x16x16x1408 latents, 16x224x224 maps, 16 clips.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from p4d.bench.latents import natural_maps, vit_like_latents
from p4d.cache_schema import CacheSpec, CacheStore, VideoEntry, create_store, write_shard


@dataclass(frozen=True)
class BenchShapes:
    taps: int
    latent: tuple[int, int, int, int]   # N', h', w', c'
    frames: tuple[int, int, int]        # N, H, W
    ray: tuple[int, int]                # h_p, w_p
    clips: int

    def describe(self) -> dict:
        n_, h_, w_, c_ = self.latent
        n, h, w = self.frames
        return {"f4d": f"{self.taps}x{n_}x{h_}x{w_}x{c_}", "maps": f"{n}x{h}x{w}", "camray": f"{n}x{self.ray[0]}x{self.ray[1]}x6",
                "clips": self.clips}


SHAPES = {
    "tiny": BenchShapes(taps=4, latent=(8, 8, 8, 64), frames=(16, 112, 112), ray=(8, 8), clips=16),
    "small": BenchShapes(taps=4, latent=(8, 16, 16, 384), frames=(16, 224, 224), ray=(16, 16), clips=16),
    "paper": BenchShapes(taps=4, latent=(8, 16, 16, 1408), frames=(16, 224, 224), ray=(16, 16), clips=16),
}


def bench_spec(shapes: BenchShapes, codec: str, clips_per_shard: int = 8, map_codec: str | None = None) -> CacheSpec:
    n_, h_, w_, c_ = shapes.latent
    n, h, w = shapes.frames
    return CacheSpec(
        taps=tuple(range(1, shapes.taps + 1)), num_frames=n, height=h, width=w,
        latent_frames=n_, latent_height=h_, latent_width=w_, latent_dim=c_,
        ray_height=shapes.ray[0], ray_width=shapes.ray[1], latent_codec=codec, clips_per_shard=clips_per_shard,
        teacher={"name": "synthetic", "preset": "bench", "config": asdict(shapes), "weights_hash": "none"},
        sampling={"num_frames": n, "policy": "uniform", "frame_stride": 1},
        spatial={"input_size": [h, w], "resize": "none", "rotation": "none"},
        normalisation={"note": "synthetic benchmark data"},
        **({} if map_codec is None else {"map_codec": map_codec}),
    )


def synthetic_clip(shapes: BenchShapes, seed: int) -> dict[str, np.ndarray]:
    """One clip of targets: f4d (taps, N', h', w', c') float32 and the four maps, float32."""
    n, h, w = shapes.frames
    clip = {"f4d": vit_like_latents(shapes.taps, *shapes.latent, seed=seed)}
    clip.update(natural_maps(n, h, w, *shapes.ray, seed=seed))
    clip["frame_index"] = np.arange(n, dtype=np.int32)
    clip["timestamp"] = np.arange(n, dtype=np.float32) / 24.0
    return clip


def synthetic_clips(shapes: BenchShapes, count: int | None = None) -> Iterator[dict[str, np.ndarray]]:
    for i in range(shapes.clips if count is None else count):
        yield synthetic_clip(shapes, seed=i)


def build_store(url: str, shapes: BenchShapes, codec: str, clips: list[dict[str, np.ndarray]],
                clips_per_shard: int = 8, map_codec: str | None = None) -> CacheStore:
    """A store holding ``clips`` (all done), written shard by shard through the cache API
    (``map_codec``: None = the cache's default)."""
    spec = bench_spec(shapes, codec, clips_per_shard, map_codec)
    video = VideoEntry(path="synthetic.mp4", size_bytes=0, content_hash="", fps=24.0, duration=1.0,
                       num_frames=shapes.frames[0], width=shapes.frames[2], height=shapes.frames[1], rotation=0,
                       num_clips=len(clips))
    store = create_store(url, spec, [video], overwrite=True)
    for shard in range(store.num_shards):
        rows = [clips[i] for i in store.shard_clips(shard)]
        write_shard(store, shard, {k: np.stack([r[k] for r in rows]) for k in rows[0]})
    return store


def files_under(path: str | Path) -> list[Path]:
    return sorted(p for p in Path(path).rglob("*") if p.is_file())


def bytes_under(path: str | Path, pattern: str = "*") -> int:
    return sum(p.stat().st_size for p in Path(path).rglob(pattern) if p.is_file())


def drop_page_cache(paths: list[Path]) -> bool:
    """Ask the kernel to evict these files from the page cache, so the next read hits the disk.

    Uses ``posix_fadvise(DONTNEED)`` (no root needed; clean pages only). Returns False where the
    platform has no fadvise; then reads come from memory for candidate and baseline alike.
    """
    if not hasattr(os, "posix_fadvise"):
        return False
    for p in paths:
        fd = os.open(p, os.O_RDONLY)
        try:
            if hasattr(os, "fdatasync"):
                os.fdatasync(fd)  # dirty pages cannot be dropped
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
    return True


def page_cache_check(folder: str | Path, mib: int = 64) -> tuple[float, float]:
    """(warm MB/s, MB/s right after :func:`drop_page_cache`) reading one ``mib`` MiB file.

    Tells whether dropping the page cache works here: where the two are alike, the host keeps
    the data in memory anyway and "cold" reads are memory reads.
    """
    import time

    path = Path(folder) / "page-cache-probe.bin"
    path.write_bytes(os.urandom(mib << 20))

    def read() -> float:
        t0 = time.perf_counter()
        n = len(path.read_bytes())
        return n / (time.perf_counter() - t0) / 1e6

    try:
        read()
        warm = read()
        drop_page_cache([path])
        return warm, read()
    finally:
        path.unlink()
