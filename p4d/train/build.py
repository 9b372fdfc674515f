"""Factories the trainer calls: the student of a recipe, its frozen D_m from the cache, the
per-group optimizer and the warmup + cosine schedule, and the cache pre-flight checks.

The D_m heads come from the cache (``heads.safetensors`` + their config in the store), never
from the teacher package.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

import torch
from torch import nn

from p4d.cache_schema import READABLE_SCHEMA_VERSIONS, CacheStore
from p4d.cache_schema.contract import HEADS_FILE
from p4d.errors import CacheSchemaError, ConfigError
from p4d.train.config import TIME_CUES, TrainConfig
from p4d.train.meta_device import parameters_on_meta
from p4d.train.model import (
    LoraSettings,
    LossConfig,
    StudentConfig,
    apply_trainability,
    build_student,
    load_nvila_lite,
    student_preset,
)

log = logging.getLogger(__name__)

#: Spatial transform the loader applies; the store's attrs must record the same one.
EXPECTED_SPATIAL = {"resize": "non-aspect-preserving", "rotation": "applied"}


# ---- cache pre-flight ---------------------------------------------------------------------------

def check_store(cfg: TrainConfig, store: CacheStore) -> None:
    """Refuse a store the run cannot use, before any process group starts: another schema version
    or teacher weights than ``--expect.*``, a spatial transform the loader does not replay, maps the
    loss needs but the cache lacks."""
    attrs = store.attrs
    version = attrs.get("schema_version")
    want = cfg.expect.schema_version
    if want is not None and version != want:
        raise CacheSchemaError(f"--cache {store.url}: schema version {version}, but --expect.schema-version is {want}")
    if version not in READABLE_SCHEMA_VERSIONS:
        raise CacheSchemaError(f"--cache {store.url}: schema version {version}; this p4d reads "
                               f"{', '.join(map(str, READABLE_SCHEMA_VERSIONS))}")
    found_hash = store.spec.teacher.get("weights_hash", "")
    if cfg.expect.teacher_hash is not None and found_hash != cfg.expect.teacher_hash:
        raise CacheSchemaError(
            f"--cache {store.url}: made with teacher weights {found_hash or '(none recorded)'}, but "
            f"--expect.teacher-hash is {cfg.expect.teacher_hash}; rebuild the cache or fix the flag")
    if cfg.expect.num_frames is not None and store.spec.num_frames != cfg.expect.num_frames:
        raise CacheSchemaError(f"--cache {store.url}: clips of N={store.spec.num_frames} frames, but "
                               f"--expect.num-frames is {cfg.expect.num_frames}; rebuild the cache or fix the flag")
    spatial = store.spec.spatial
    for key, value in EXPECTED_SPATIAL.items():
        if value not in str(spatial.get(key)):
            raise CacheSchemaError(
                f"--cache {store.url}: spatial transform {key}={spatial.get(key)!r}; the loader decodes frames with "
                f"{key}={value!r}, so frames and cached maps would not line up")
    weights = cfg.loss_weights(LossConfig().__dict__)
    for term in ("depth", "flow", "motion", "camray"):
        if weights[f"{term}_weight"] > 0 and term not in store.spec.modalities:
            raise ConfigError(
                f"--loss {cfg.recipe.loss}: needs the {term} map, but the cache {store.url} holds only "
                f"{', '.join(store.spec.modalities)}; pick another --loss or set --loss.{term}-weight 0")


def load_cache_heads(store: CacheStore):
    """The frozen D_m stored in the cache (float32)."""
    from p4d.heads import load_heads

    return load_heads(store.read_side_file(HEADS_FILE), dtype=torch.float32)


# ---- the student --------------------------------------------------------------------------------

def student_config(cfg: TrainConfig, base: StudentConfig | None = None) -> StudentConfig:
    """The preset (or ``base``) with the recipe's strategy, time cue, loss weights and model overrides."""
    if base is None and cfg.model.config_file:
        base = _student_from_file(cfg.model.config_file)
    # --model.init-from alone: the checkpoint's sizes over the NVILA-Lite-8B preset's other choices
    base = base if base is not None else student_preset(cfg.model.preset or "nvila-lite-8b")
    changes: dict[str, Any] = {
        "strategy": cfg.recipe.strategy,
        "tpe": TIME_CUES[cfg.recipe.time_cue],
        "loss": base.loss.__class__(**{**base.loss.__dict__, **cfg.loss_weights(base.loss.__dict__)}),
    }
    for name in ("attn", "dtype", "gradient_checkpointing", "d4dp", "d4dp_time", "d4dp_hidden"):
        value = getattr(cfg.model, name)
        if value is not None:
            changes[name] = value
    return base.replace(**changes)


def _student_from_file(path: str) -> StudentConfig:
    import json
    from pathlib import Path

    file = Path(path)
    try:
        data = json.loads(file.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"--model.config-file {file}: not a readable JSON file ({exc})") from None
    try:
        return StudentConfig.from_dict(data.get("config", data) if "format" in data else data)
    except ConfigError as exc:
        raise ConfigError(f"--model.config-file {file}: {exc}") from None


#: Cached clips whose F_4D :func:`d4dp_ceiling` reads at the start of a run.
CEILING_CLIPS = 4


def d4dp_ceiling(student: StudentConfig, store: CacheStore, samples, *, clips: int = CEILING_CLIPS) -> str | None:
    """The line ``p4d train`` logs at start when D_4DP is trained: the student's (N, h, w) token grid,
    the teacher's (N', h', w') latent grid and the best token cosine a student that knew F_4D exactly
    could reach through D_4DP's rearrange (:func:`~p4d.train.model.d4dp.grid_cosine_ceiling`, mean over
    the first ``clips`` cached clips of the run). None without D_4DP or cached clips."""
    from p4d.cache_schema import read_clips
    from p4d.train.model.d4dp import grid_cosine_ceiling

    if not student.distills or student.f4d_shape is None:
        return None
    video = [s for s in samples if s.kind == "video"]
    picked = sorted({s.clip for s in video})[:clips]
    if not picked:
        return None
    n = video[0].num_frames
    h, w = student.token_grid
    _, n_t, h_t, w_t, _ = student.f4d_shape
    f4d = torch.from_numpy(read_clips(store, picked, fields=("f4d",))["f4d"])
    ceiling = grid_cosine_ceiling(f4d, (n, h, w), student.d4dp_time)
    limit = ("it holds the teacher's grid" if ceiling > 1 - 1e-6 else
             "a capacity limit of the grid, not of training: LD's token cosine cannot pass it")
    return (f"D_4DP: student tokens N×h×w = {n}×{h}×{w} → teacher latent grid N'×h'×w' = {n_t}×{h_t}×{w_t} "
            f"(d4dp-time {student.d4dp_time}, bilinear); a student that knew F_4D exactly reaches token cosine "
            f"{ceiling:.3f} at most on {len(picked)} cached clip(s): {limit}")


def needs_heads(cfg: TrainConfig) -> bool:
    return any(t in cfg.loss_terms for t in ("depth", "flow", "motion", "camray"))


def build_model(cfg: TrainConfig, store: CacheStore, *, device: torch.device | str = "cpu",
                base: StudentConfig | None = None, empty: bool = False) -> tuple[nn.Module, dict]:
    """The student of the recipe on ``device`` with its trainability and precision policy applied
    (:mod:`p4d.train.precision`: fp32 master weights under ``bf16-mixed``); returns (model,
    {part: trainable parameter count}). Random init is seeded by ``--runtime.seed``. ``base``
    replaces the ``--model.preset`` architecture (benchmarks). ``empty``: every parameter but the
    D_m heads' on the meta device, no weights read and nothing moved to ``device`` (the FSDP ranks
    that receive their shards from rank 0, :func:`build_sharded_model`)."""
    from p4d.train.precision import apply_precision, resolve_precision

    scfg = student_config(cfg, base)
    heads = load_cache_heads(store) if needs_heads(cfg) else None
    torch.manual_seed(cfg.runtime.seed)
    with parameters_on_meta() if empty else contextlib.nullcontext():
        if cfg.model.init_from:
            model = load_nvila_lite(cfg.model.init_from, config=None, heads=heads, cache_spec=store.spec,
                                    load_weights=not empty, **_checkpoint_overrides(scfg))
        else:
            model = build_student(scfg, heads=heads, cache_spec=store.spec)
    counts = apply_trainability(model, cfg.recipe.tune, lora=LoraSettings(r=cfg.lora.r, alpha=cfg.lora.alpha,
                                                                           dropout=cfg.lora.dropout))
    apply_precision(model, resolve_precision(cfg.runtime.precision, device))
    if empty:
        return model, counts  # sharding.place_sharded places it (and its attention) on the device
    model = model.to(device)
    model.place_attention(device)  # attn auto: flash-attention 2 on CUDA when installed, else sdpa
    return model, counts


def build_sharded_model(cfg: TrainConfig, store: CacheStore, dist) -> tuple[nn.Module, dict]:
    """The FSDP2-sharded student of the recipe on ``dist.device`` (every rank calls it): rank 0
    builds it for real on the host (the device receives shards only: 8B has 31 GB of fp32
    masters), the other ranks on the meta device; :func:`p4d.train.sharding.place_sharded` shards
    it and broadcasts rank 0's weights."""
    from p4d.train.sharding import place_sharded

    if dist.is_main:
        model, counts = build_model(cfg, store, device=torch.device("cpu"))
    else:
        model, counts = build_model(cfg, store, device=dist.device, empty=True)
    return place_sharded(model, precision=cfg.runtime.precision, device=dist.device), counts


def _checkpoint_overrides(scfg: StudentConfig) -> dict[str, Any]:
    return {k: getattr(scfg, k) for k in ("strategy", "tpe", "loss", "attn", "dtype", "gradient_checkpointing", "d4dp",
                                          "d4dp_time", "d4dp_hidden", "name")}
