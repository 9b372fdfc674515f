"""``p4d bench fidelity``: bytes -> fidelity -> learning. The same tiny student, same seed, same
batches, trained K steps on F_4D targets that went through each latent codec.

Setup (in a temporary folder, as ``p4d bench train``): synthetic H.264 videos -> the tiny teacher
(the ``tiny`` preset, float32 on CPU) run once per clip -> its F_4D and maps are the *exact*
targets. Each training row replaces only the F_4D targets by their codec round trip (the maps stay
exact, so every difference comes from the latent codec):

* ``float32`` (exact; the baseline) and ``float32 (rerun)`` (the same run again: its deltas are
  0 when the training is deterministic, so any other delta is the codec's);
* ``bfloat16`` (what the public release computes in);
* ``dpcm-channel`` (p4d's default, through the write-time self-check with the default policy:
  the level each clip would be stored at);
* ``dpcm 0.5xRMS`` (a coarser level of the same codec: step 0.5 x the channel's RMS, unchecked);
* ``zeros (control)``: all-zero F_4D targets. If even this stays within 1 % of float32 on the
  held-out LD, the run is too short to judge any codec, and the default's verdict says so.

Per row: bytes / raw float32 of the row's F_4D (each clip-tap chunk compressed with the part's
zarr codec chain, through the numcodecs equivalents; zarr's shard index and checksums left out),
both self-check criteria (token cosine mean / worst; per-channel R^2, lowest tap's mean / worst
channel; :mod:`p4d.cache_schema.fidelity`), the training LD / ED / SFT (mean of the last steps),
and the held-out LD / ED after K steps against the *exact* targets, each as a ratio to the float32
row (goal for the default codec: within 1 %, at <= 0.15 of raw).

A second table judges the codecs without training on the three latent sources of
:mod:`p4d.bench.latents` (independent, correlated, minilm) at the size's F_4D shape, with a per-tap
PCA keeping 256/1408 of the components as the transform-codec example.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import numpy as np
import torch

from p4d.bench.harness import BenchResult, Goal, Row

log = logging.getLogger(__name__)

#: size -> (train videos, held-out videos, steps K); student: the tiny preset
SIZES = {"tiny": (6, 2, 12), "small": (12, 4, 40)}
#: latent shape (taps, N', h', w', c') of the codec-only table per size
SOURCE_SHAPES = {"tiny": (4, 8, 8, 8, 64), "small": (4, 8, 16, 16, 384), "paper": (4, 8, 16, 16, 1408)}
GOAL_LEARNING = Goal("within", 0.01)
GOAL_BYTES = 0.15
COARSE_STEP = 0.5
MAP_TERMS = ("depth", "flow", "motion", "camray")


# ---- codecs as round trips -------------------------------------------------------------------


def _compressed_bytes(parts: dict[str, np.ndarray], codec_name: str) -> int:
    """Bytes of ``parts`` (leading axes clip, tap) compressed chunk by chunk (one clip-tap per
    chunk) with each part's codec chain; the bfloat16 fallback part like ``bfloat16``'s ``f4d``."""
    import numcodecs
    from zarr.codecs import BloscCodec, ZstdCodec

    from p4d.cache_schema.codecs import LATENT_CODECS
    from p4d.cache_schema.fidelity import FALLBACK_PART

    specs = {p.name: p for p in LATENT_CODECS[codec_name].parts}
    total = 0
    for name, arr in parts.items():
        part = LATENT_CODECS["bfloat16"].parts[0] if name == FALLBACK_PART else specs[name]
        chain = []
        for c in part.compressors():
            if isinstance(c, ZstdCodec):
                chain.append(numcodecs.Zstd(level=c.level))
            elif isinstance(c, BloscCodec):
                chain.append(numcodecs.Blosc(cname=getattr(c.cname, "value", c.cname), clevel=c.clevel,
                                             shuffle=numcodecs.Blosc.BITSHUFFLE, typesize=c.typesize))
        arr = np.ascontiguousarray(arr, dtype=part.dtype)
        for idx in np.ndindex(*arr.shape[:2]):
            data = arr[idx].tobytes()
            for c in chain:
                data = c.encode(data)
            total += len(data)
    return total


def codec_roundtrip(name: str, x: np.ndarray) -> tuple[np.ndarray, int, list[int]]:
    """F_4D ``x`` (clips, taps, N', h', w', c') float32 through codec ``name`` -> (decoded, bytes,
    level per clip). Names: ``float32``, ``bfloat16``, ``dpcm-channel`` (self-checked, default
    policy: what the cache stores), ``dpcm 0.5xRMS`` (unchecked coarser step)."""
    from p4d.cache_schema.codecs import LATENT_CODECS, dpcm_encode
    from p4d.cache_schema.fidelity import FidelityPolicy, encode_checked
    from p4d.cache_schema.codecs import bfloat16_bits_to_float32

    n = len(x)
    if name == "zeros (control)":
        return np.zeros_like(x), 0, [0] * n
    if name.startswith("float32"):
        return x.copy(), x.nbytes, [0] * n
    if name == "bfloat16":
        codec = LATENT_CODECS["bfloat16"]
        parts = codec.encode(x)
        return codec.decode(parts), _compressed_bytes(parts, "bfloat16"), [0] * n
    if name == "dpcm-channel":
        codec = LATENT_CODECS[name]
        parts, bf16, levels, _ = encode_checked(name, x, np.ones(n, bool), FidelityPolicy())
        y = codec.decode(parts)
        stored = dict(parts)
        if bf16 is not None:
            fell = levels == 2
            y[fell] = bfloat16_bits_to_float32(bf16[fell])
            stored["f4d_bf16"] = bf16[fell]
        return y, _compressed_bytes(stored, name), [int(v) for v in levels]
    if name == f"dpcm {COARSE_STEP}xRMS":
        parts = dpcm_encode(x, step_over_rms=COARSE_STEP)
        return LATENT_CODECS["dpcm-channel"].decode(parts), _compressed_bytes(parts, "dpcm-channel"), [0] * n
    raise ValueError(f"unknown codec row {name!r}")


TRAIN_ROWS = ("float32", "float32 (rerun)", "bfloat16", "dpcm-channel", f"dpcm {COARSE_STEP}xRMS", "zeros (control)")


def _figures(x: np.ndarray, y: np.ndarray) -> dict:
    """Both self-check criteria over clips: the mean of each clip's mean, the worst of its worst."""
    from p4d.cache_schema.fidelity import token_fidelity

    st = [token_fidelity(a, b) for a, b in zip(x, y)]
    return {"token cos mean": float(np.mean([s["mean_cosine"] for s in st])),
            "token cos worst": float(min(s["worst_cosine"] for s in st)),
            "channel R2 mean": float(np.mean([s["channel_r2_mean"] for s in st])),
            "channel R2 worst": float(min(s["channel_r2_worst"] for s in st))}


# ---- training on each row's targets ----------------------------------------------------------


def _ed(terms: dict) -> float:
    return float(sum(terms.get(m, 0.0) for m in MAP_TERMS))


def _held_out(state, batches, device) -> dict[str, float]:
    """Mean LD / ED / SFT of the model on held-out batches with the exact targets (no gradient)."""
    from p4d.train.trainer import forward_batch

    model = state[0]
    model.eval()
    sums: dict[str, float] = {}
    with torch.no_grad():
        for batch in batches:
            out = forward_batch(model, batch, device)
            for k, v in out["losses"].items():
                sums[k] = sums.get(k, 0.0) + float(v) / len(batches)
    return sums


def _train(paths, batches: list[dict], f4d: list[torch.Tensor], steps: int) -> list[dict]:
    """K steps from the seed on ``batches`` (in order, cycled), each with its F_4D targets replaced."""
    state = paths.fresh()
    curve = []
    for s in range(steps):
        i = s % len(batches)
        batch = {**batches[i], "targets": {**batches[i]["targets"], "f4d": f4d[i]}}
        curve.append(paths.step(state, batch))
    return state, curve


def _setup(tmp: Path, train: int, held: int):
    from p4d.bench.train import Paths, _setup as train_setup, _student_cfg
    from p4d.teacher.model import build_teacher

    conversations, store = train_setup(tmp, train + held)
    device = torch.device("cpu")
    paths = Paths(conversations, store, tmp / "run", _student_cfg({"llm": {}, "vision": {}}), device)
    paths.cfg.optim.max_steps = 10**6
    paths.teacher = build_teacher(paths.store.spec.teacher["preset"], device=device)
    state = paths.fresh()
    pairs = [[i, i + 1] for i in range(0, train + held - 1, 2)]
    batches = [paths.online_batch(state[3], state[4], p) for p in pairs]  # exact float32 targets
    paths.teacher = None
    n_train = train // 2
    return paths, batches[:n_train], batches[n_train:]


def _learning_rows(size: str, steps: int | None) -> tuple[list[Row], list[str], dict]:
    train, held, k = SIZES[size]
    k = steps or k
    torch.set_flush_denormal(True)
    with tempfile.TemporaryDirectory(prefix="p4d-bench-fidelity-") as tmp:
        paths, batches, held_out = _setup(Path(tmp), train, held)
        exact = np.stack([b["targets"]["f4d"].numpy() for b in batches])  # (batches, 2, taps, N', h', w', c')
        shape = exact.shape
        flat = exact.reshape(-1, *shape[2:])
        results = {}
        for name in TRAIN_ROWS:
            y, nbytes, levels = codec_roundtrip(name, flat)
            targets = [torch.from_numpy(t) for t in y.reshape(shape)]
            state, curve = _train(paths, batches, targets, k)
            last = curve[-min(5, k):]
            results[name] = {
                "bytes/raw": nbytes / flat.nbytes, "levels": levels, **_figures(flat, y),
                "train LD": float(np.mean([c["ld"] for c in last])),
                "train ED": float(np.mean([_ed(c) for c in last])),
                "train SFT": float(np.mean([c.get("sft", np.nan) for c in last])),
                "held": _held_out(state, held_out, paths.dist.device)}
            log.info("bench fidelity: %s done", name)
    base = results["float32"]
    control = results["zeros (control)"]["held"]["ld"] / base["held"]["ld"]
    sensitive = not GOAL_LEARNING.check(control).startswith("met")  # all-zero targets must move held-out LD
    rows, notes = [], []
    for name, r in results.items():
        extra = {"bytes/raw": r["bytes/raw"], "token cos mean": r["token cos mean"], "token cos worst": r["token cos worst"],
                 "channel R2 mean": r["channel R2 mean"], "channel R2 worst": r["channel R2 worst"],
                 "train LD": r["train LD"], "train ED": r["train ED"], "train SFT": r["train SFT"]}
        if name == "dpcm-channel":
            extra["levels"] = "/".join(str(r["levels"].count(v)) for v in (0, 1, 2)) + " clips at level 0/1/2"
        goal = GOAL_LEARNING if name in ("dpcm-channel", "float32 (rerun)") else None
        checks = ({f"bytes/raw <= {GOAL_BYTES}": r["bytes/raw"] <= GOAL_BYTES,
                   "bench sensitive (zeros control off by > 1 %)": sensitive} if name == "dpcm-channel" else {})
        rows.append(Row(f"{name}: held-out LD after {k} steps vs float32 targets", "loss", r["held"]["ld"],
                        base["held"]["ld"], goal=goal, checks=checks, extra=extra))
        rows.append(Row(f"{name}: held-out ED after {k} steps vs float32 targets", "loss", _ed(r["held"]),
                        _ed(base["held"]), goal=goal, checks=checks))
    notes.append(f"training: tiny student from one seed, {len(batches)} batches of 2 clips cycled for {k} steps, "
                 f"held out: {len(held_out)} batches scored against the exact (float32) targets; maps exact in every row")
    notes.append("train LD/ED/SFT: mean of the last 5 steps' terms; ED = the sum of the map terms")
    notes.append(f"sensitivity: training on all-zero F_4D targets gives held-out LD x{control:.5f} of float32's; "
                 + ("the bench can tell a destroyed target from an exact one" if sensitive else
                    "within 1 %: at this K and scale the student does not learn F_4D enough for the codec rows "
                    "to mean anything (raise --steps / --size)"))
    shapes = {"f4d per clip": "x".join(map(str, shape[2:])), "train clips": flat.shape[0],
              "held-out clips": 2 * len(held_out), "steps": k}
    return rows, notes, shapes


# ---- codecs x latent sources (no training) --------------------------------------------------


def _source_rows(size: str) -> list[Row]:
    from p4d.bench.latents import LATENT_SOURCES, pca_roundtrip
    from p4d.errors import ConfigError

    taps, n, h, w, c = SOURCE_SHAPES[size]
    keep = max(1, round(256 * c / 1408))
    rows = []
    for source, make in LATENT_SOURCES.items():
        try:
            x = make(taps, n, h, w, c, seed=0)[None]
        except ConfigError as exc:  # minilm without its package
            rows.append(Row(f"{source}: skipped ({exc})", "bytes/raw", float("nan"), 1.0))
            continue
        for name in ("bfloat16", "dpcm-channel", f"dpcm {COARSE_STEP}xRMS", f"pca {keep}/{c}"):
            if name.startswith("pca"):
                y, ratio = pca_roundtrip(x[0], keep)
                y, nbytes = y[None], ratio * x.nbytes
            else:
                y, nbytes, _ = codec_roundtrip(name, x)
            rows.append(Row(f"{source} latents, {name}", "bytes/raw", nbytes / x.nbytes, 1.0, extra=_figures(x, y)))
    return rows


def run(size: str, steps: int | None = None) -> BenchResult:
    if size not in SOURCE_SHAPES:
        return BenchResult(name="fidelity", size=size, shapes={}, status=f"not run: sizes {', '.join(SOURCE_SHAPES)}")
    result = BenchResult(name="fidelity", size=size, shapes={})
    if size in SIZES:
        rows, notes, shapes = _learning_rows(size, steps)
        result.rows += rows
        result.notes += notes
        result.shapes.update(shapes)
    else:
        result.notes.append(f"--size {size}: codec table only (the learning rows run at --size tiny or small)")
    result.rows += _source_rows(size)
    result.shapes["sources"] = "x".join(map(str, SOURCE_SHAPES[size]))
    result.notes.append("source rows: bytes/raw of PCA = float16 basis + coefficients + means, uncompressed; "
                        "ratio column = bytes/raw")
    return result
