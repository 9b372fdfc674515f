"""A stand-in teacher for measuring the pipeline around the forward on machines without a GPU.

It takes ``1 / rate`` seconds per clip (a sleep, which like a GPU kernel leaves the CPU to the
other threads) and returns outputs of the real preset's shapes with ViT-like statistics
(:func:`p4d.bench.latents.vit_like_latents`, :func:`p4d.bench.latents.natural_maps`), computed
once per process and batch size, so everything the job does but the forward is real: decode,
resize, the device-side encode (torch on CPU here), the write. Used by
``p4d bench precompute --teacher-rate R``; never by a real run.
"""

from __future__ import annotations

import threading
import time

import torch

from p4d.teacher.presets import TeacherPreset

_CACHE: dict[tuple, dict[str, torch.Tensor]] = {}
_LOCK = threading.Lock()


class StandInTeacher:
    """Callable like the teacher: frames (B, N, H, W, 3) uint8 -> {f4d, depth, flow, motion, camray}."""

    heads = None  # no D_m heads to store

    def __init__(self, preset: TeacherPreset, rate: float, device: str = "cpu"):
        self.preset, self.rate, self.device = preset, float(rate), device

    def state_dict(self) -> dict:
        return {"stand_in_rate": torch.tensor(self.rate)}

    def _outputs(self, batch: int) -> dict[str, torch.Tensor]:
        from p4d.bench.latents import natural_maps, vit_like_latents

        key = (self.preset.name, self.preset.taps, batch, self.device)
        with _LOCK:
            if key not in _CACHE:
                n, h, w, c = self.preset.latent_grid
                hp, wp = self.preset.ray_grid
                f4d = torch.from_numpy(vit_like_latents(len(self.preset.taps), n, h, w, c, seed=0))
                maps = natural_maps(self.preset.num_frames, self.preset.img_size, self.preset.img_size, hp, wp, seed=0)
                out = {"f4d": f4d, **{k: torch.from_numpy(v) for k, v in maps.items()}}
                _CACHE[key] = {k: v[None].repeat(batch, *([1] * v.ndim)).to(self.device) for k, v in out.items()}
            return _CACHE[key]

    def __call__(self, frames: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self._outputs(int(frames.shape[0]))
        time.sleep(frames.shape[0] / self.rate)
        return out
