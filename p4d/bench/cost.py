"""``p4d bench cost``: what a cache saves a user, from the FLOP model and measured bytes per clip.

For C clips trained E epochs by R runs (students) of ``--student`` on G GPUs:

* GPU-hours **online** = R x E x C x (student + teacher TFLOP per sample) / rate;
  **cached** = C x teacher TFLOP / rate (precompute once) + R x E x C x student TFLOP / rate.
  FLOPs from :func:`p4d.bench.train.step_flops` (the preset's gradient checkpointing included),
  ``rate`` = the effective TFLOP/s per GPU (``--gpu-tflops``, default 400: an H100's 989 bf16
  dense at 40 % utilisation), the same for teacher and student (the model's assumption; the
  teacher-input decode and the loader are left out).
* **TB stored** = C x bytes per clip, measured: on ``--store`` (bytes under it / done clips), else
  on synthetic paper-shape clips written with the default codec (``p4d.bench.synthetic_store``).
* **Break-even runs**: the least R at which cached costs no more than online, in GPU-hours alone,
  and in money with the storage kept one month (``--gpu-hour-usd``, ``--tb-month-usd``).
* **Memory per GPU** without the cache: the student's states under full sharding (bf16 weights
  and gradients, fp32 master and Adam moments = 16 bytes per parameter, / G), its activations at
  one sample per GPU with checkpointing (block inputs + one block's backward + logits), the
  teacher's bf16 weights (replicated) and activations (three full-resolution DPT feature maps).
  Estimates, stated term by term; "fits" compares them with ``--gpu-mem``.
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from p4d.bench.harness import BenchResult, Row
from p4d.bench.synthetic_store import SHAPES, bench_spec
from p4d.cache_schema import DEFAULT_LATENT_CODEC, raw_float32_bytes_per_clip
from p4d.errors import ConfigError

STUDENTS = ("nvila-lite-2b", "nvila-lite-8b")
GB = 1e9


@dataclass(frozen=True)
class CostInputs:
    clips: int = 1_000_000
    epochs: int = 10
    runs: int = 1
    student: str = "nvila-lite-8b"
    gpus: int = 8
    gpu_mem_gb: float = 80.0
    gpu_tflops: float = 400.0
    gpu_hour_usd: float = 2.5
    tb_month_usd: float = 23.0

    def validate(self) -> CostInputs:
        for flag, value in (("clips", self.clips), ("epochs", self.epochs), ("runs", self.runs), ("gpus", self.gpus)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"--{flag} {value!r}: expected an integer >= 1")
        for flag, value in (("gpu-mem", self.gpu_mem_gb), ("gpu-tflops", self.gpu_tflops),
                            ("gpu-hour-usd", self.gpu_hour_usd), ("tb-month-usd", self.tb_month_usd)):
            if not value > 0:
                raise ConfigError(f"--{flag} {value!r}: expected a number > 0")
        if self.student not in STUDENTS:
            raise ConfigError(f"--student {self.student!r}: expected one of {', '.join(STUDENTS)}")
        return self


def student_params(cfg) -> int:
    """Parameters of E_v + E_p + LLM (blocks + embeddings; norms and biases left out)."""
    from p4d.bench.train import _layer_params

    v, llm = cfg.vision, cfg.llm
    d, c = int(v["hidden_size"]), int(llm["hidden_size"])
    vision = _layer_params(v, 2) * int(v["num_hidden_layers"])
    projector = 9 * d * 3 * d + 3 * d * c + c * c  # as step_flops' E_p term
    vocab = int(llm["vocab_size"]) * c * (1 if llm.get("tie_word_embeddings") else 2)
    return vision + projector + _layer_params(llm, 3) * int(llm["num_hidden_layers"]) + vocab


def memory_per_gpu(student: str, gpus: int, tokens: int) -> dict[str, float]:
    """GB per GPU of each term of an online step (one sample per GPU); see the module docstring."""
    from p4d.teacher.info import teacher_stats
    from p4d.train.model import student_preset

    cfg = student_preset(student)
    llm = cfg.llm
    c, inner, layers, vocab = (int(llm[k]) for k in ("hidden_size", "intermediate_size", "num_hidden_layers",
                                                        "vocab_size"))
    stats = teacher_stats("l4p")
    p = stats["preset"]
    heads = p.heads_config(("depth",))
    return {
        "student states": 16 * student_params(cfg) / gpus / GB,
        "student activations": (layers * tokens * c * 2 + tokens * (6 * c + 3 * inner) * 2 + tokens * vocab * 6) / GB,
        "teacher weights": 2 * stats["params"]["total"] / GB,
        "teacher activations": 3 * p.num_frames * p.img_size ** 2 * heads.feature_dim * 2 / GB,
    }


def measured_bytes_per_clip(store: str | None = None) -> tuple[float, str]:
    """(bytes per clip, where measured): a store's bytes over its done clips, else two synthetic
    paper-shape clips written with the default codec."""
    from p4d.bench.synthetic_store import SHAPES, build_store, bytes_under, synthetic_clips
    from p4d.cache_schema import DEFAULT_LATENT_CODEC, open_store

    if store is not None:
        s = open_store(store)
        done = s.status().get("done", 0)
        if not done or "://" in store:
            raise ConfigError(f"--store {store}: expected a local store with done clips (found {done})")
        return bytes_under(store) / done, f"{store} ({done} done clips)"
    shapes = SHAPES["paper"]
    with tempfile.TemporaryDirectory(prefix="p4d-bench-cost-") as tmp:
        url = str(Path(tmp) / "cache.zarr")
        build_store(url, shapes, DEFAULT_LATENT_CODEC, list(synthetic_clips(shapes, 2)), clips_per_shard=2)
        return bytes_under(url) / 2, f"2 synthetic paper-shape clips ({DEFAULT_LATENT_CODEC})"


def cost(inputs: CostInputs, bytes_per_clip: float) -> dict:
    """Every figure of the cost table for ``inputs`` (see the module docstring)."""
    from p4d.bench.train import step_flops

    i = inputs.validate()
    f = step_flops(i.student, "l4p")
    s, t = f["student TFLOP"], f["teacher TFLOP"]
    hours = lambda tflop: tflop / i.gpu_tflops / 3600  # noqa: E731 - TFLOP -> GPU-hours
    samples = i.clips * i.epochs
    online_run, cached_run, precompute = hours(samples * (s + t)), hours(samples * s), hours(i.clips * t)
    tb = i.clips * bytes_per_clip / 1e12
    storage_usd = tb * i.tb_month_usd
    saved_per_run = online_run - cached_run
    mem = memory_per_gpu(i.student, i.gpus, f["tokens"])
    online_gb, cached_gb = sum(mem.values()), mem["student states"] + mem["student activations"]
    return {
        "inputs": asdict(i), "student TFLOP": s, "teacher TFLOP": t, "checkpoint recompute TFLOP":
            f["terms TFLOP"].get("LLM recompute", 0.0), "teacher share of the online step": t / (s + t),
        "GPU-hours online": i.runs * online_run, "GPU-hours cached": precompute + i.runs * cached_run,
        "GPU-hours precompute": precompute, "GPU-hours saved per run": saved_per_run,
        "bytes per clip": bytes_per_clip, "TB stored": tb, "storage USD per month": storage_usd,
        "break-even runs (GPU-hours)": max(1, math.ceil(precompute / saved_per_run)),
        "break-even runs (USD, storage 1 month)": max(1, math.ceil(
            (precompute * i.gpu_hour_usd + storage_usd) / (saved_per_run * i.gpu_hour_usd))),
        "memory GB per GPU": mem, "online GB per GPU": online_gb, "cached GB per GPU": cached_gb,
        "online fits": online_gb <= i.gpu_mem_gb, "cached fits": cached_gb <= i.gpu_mem_gb,
    }


def run(size: str, *, clips: int = 1_000_000, epochs: int = 10, runs: int = 1, student: str = "nvila-lite-8b",
        gpus: int = 8, gpu_mem: float = 80.0, gpu_tflops: float = 400.0, gpu_hour_usd: float = 2.5,
        tb_month_usd: float = 23.0, store: str | None = None) -> BenchResult:
    """The cost table (``size`` is not used: FLOPs and bytes are at paper shapes)."""
    inputs = CostInputs(clips, epochs, runs, student, gpus, gpu_mem, gpu_tflops, gpu_hour_usd, tb_month_usd).validate()
    per_clip, where = measured_bytes_per_clip(store)
    c = cost(inputs, per_clip)
    result = BenchResult(name="cost", size=size, shapes={"clips": clips, "epochs": epochs, "runs": runs,
                                                          "student": student, "gpus": gpus, "gpu mem GB": gpu_mem})
    result.rows.append(Row(f"GPU-hours, cached (precompute once + {runs} run(s)) vs online", "GPU-hours",
                           c["GPU-hours cached"], c["GPU-hours online"],
                           extra={"precompute": c["GPU-hours precompute"], "saved per run": c["GPU-hours saved per run"],
                                  "teacher share": c["teacher share of the online step"]}))
    raw = clips * sum(raw_float32_bytes_per_clip(bench_spec(SHAPES["paper"], DEFAULT_LATENT_CODEC)).values()) / 1e12
    result.rows.append(Row("stored vs the targets as raw float32", "TB", c["TB stored"], raw,
                           extra={"MB per clip": per_clip / 1e6, "USD per month": c["storage USD per month"]}))
    result.rows.append(Row(f"memory per GPU, cached vs online ({gpu_mem:g} GB GPU)", "GB", c["cached GB per GPU"],
                           c["online GB per GPU"], checks={}, extra={
                               "online fits": c["online fits"], "cached fits": c["cached fits"],
                               **{k: round(v, 2) for k, v in c["memory GB per GPU"].items()}}))
    result.notes.append(
        f"break-even: {c['break-even runs (GPU-hours)']} run(s) in GPU-hours; "
        f"{c['break-even runs (USD, storage 1 month)']} run(s) in money at ${gpu_hour_usd:g}/GPU-hour and "
        f"${tb_month_usd:g}/TB-month (storage kept one month)")
    result.notes.append(
        f"FLOP model (p4d.bench.train.step_flops): student {c['student TFLOP']:.1f} TFLOP per sample (gradient-"
        f"checkpoint recompute {c['checkpoint recompute TFLOP']:.1f} included), L4P forward {c['teacher TFLOP']:.1f}; "
        f"{gpu_tflops:g} effective TFLOP/s per GPU for both; loader and decode left out")
    result.notes.append(f"bytes per clip measured on {where}: {per_clip / 1e6:.2f} MB")
    result.notes.append("memory: estimates (16 B/param student states fully sharded over the GPUs, checkpointed "
                        "activations at one sample per GPU, bf16 teacher weights replicated + 3 DPT feature maps)")
    return result
