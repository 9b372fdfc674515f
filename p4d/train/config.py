"""The validated configuration of one ``p4d train`` run: nested dataclasses, YAML, CLI overrides.

Every field is a flag ``--SECTION.FIELD VALUE`` (dashes or underscores), e.g. ``--optim.lr-llm 2e-5``;
the common ones also have short flags (``--data``, ``--cache``, ``--out``, ``--strategy`` ...).
Order of precedence: defaults < ``--config FILE`` (YAML) < flags. :meth:`TrainConfig.validate`
runs before any process group starts and every message names the flag to change.

Whole recipes: ``--recipe release`` (the public 4D-RGPT training script) and ``--recipe paper``
(the paper's readings), see :mod:`p4d.train.recipes`; they sit under the YAML file and the flags.

Recipe presets (the paper's ablations):

- strategy (Tab. 4): ``4d-sft``, ``4d-concat``, ``4d-pe``, ``p4d`` (default); ``zero-shot`` is eval only.
- loss (Tab. 5): ``ld-only``, ``ld+d``, ``ld+d+f``, ``ld+d+f+m``, ``ed-only``, ``ld+ed`` (default);
  ED = depth + flow + motion + camray.
- time cue (Tab. 6): ``none``, ``mark``, ``prompt``, ``tpe`` (default).
- trainability (Tab. 7): ``tune-all``, ``tune-v``, ``tune-p``, ``tune-llm``, ``tune-llm-lora``,
  ``tune-p+llm-lora``, ``tune-p+llm`` (default, E_v frozen).
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from p4d.errors import ConfigError

STRATEGIES = ("zero-shot", "4d-sft", "4d-concat", "4d-pe", "p4d")
LOSS_PRESETS: dict[str, tuple[str, ...]] = {
    "ld-only": ("ld",),
    "ld+d": ("ld", "depth"),
    "ld+d+f": ("ld", "depth", "flow"),
    "ld+d+f+m": ("ld", "depth", "flow", "motion"),
    "ed-only": ("depth", "flow", "motion", "camray"),
    "ld+ed": ("ld", "depth", "flow", "motion", "camray"),
}
#: Tab. 6 time cue -> StudentConfig.tpe
TIME_CUES: dict[str, str] = {"none": "off", "mark": "mark", "prompt": "prompt", "tpe": "add"}
TRAINABILITY = ("tune-all", "tune-v", "tune-p", "tune-llm", "tune-llm-lora", "tune-p+llm-lora", "tune-p+llm")
DEVICES = ("auto", "cpu", "cuda")
#: --runtime.precision (p4d.train.precision documents each policy); "bf16" is read as "bf16-mixed".
PRECISIONS = ("auto", "fp32", "bf16-mixed", "bf16-pure")
#: --runtime.parallel (p4d.train.sharding documents each choice).
PARALLEL = ("auto", "none", "ddp", "fsdp")
#: --export-dtype (--checkpoint.export-dtype): the floating weights of OUT/export
EXPORT_DTYPES = ("bf16", "fp32")
LOSS_TERMS = ("ld", "depth", "flow", "motion", "camray")


@dataclass(kw_only=True)
class DataConfig:
    conversations: str = ""              # --data: LLaVA-style conversation .json/.jsonl
    cache: str = ""                      # --cache: the Zarr store written by `p4d precompute`
    video_root: str | None = None        # relative video/image paths are relative to this (default: the data file's folder)
    allow_missing_targets: bool = False  # records whose clip is failed/missing train SFT-only instead of being skipped
    batch_size: int = 1                  # clips per process per micro-step
    num_workers: int = 0                 # DataLoader workers (spawn start method)
    prefetch_factor: int = 2
    max_length: int | None = None        # refuse (skip and count) a sample whose token ids are longer (release: 16384)


@dataclass(kw_only=True)
class ModelConfig:
    preset: str | None = None            # --student: nvila-lite-8b | nvila-lite-2b | tiny (smoke runs); required unless init_from/config_file
    config_file: str | None = None       # a StudentConfig JSON (StudentConfig.to_dict()) used instead of the preset
    init_from: str | None = None         # NVILA-Lite checkpoint folder (llm/, vision_tower/, mm_projector/); None: seeded random init
    attn: str | None = None              # auto | sdpa | eager | flash_attention_2 (default: the preset's; NVILA: auto = flash-attn 2 on CUDA if installed, else sdpa)
    dtype: str | None = None             # parameter dtype float32 | bfloat16 (default: the preset's)
    gradient_checkpointing: bool | None = None  # activation checkpointing of E_v + LLM (default: the preset's; on for NVILA)
    d4dp: str | None = None              # D_4DP per tap: linear (the release) | mlp (model card); default: the preset's
    d4dp_time: str | None = None         # D_4DP N -> N': stride (the release: frames 0, 2, ...) | mean (pairs averaged)
    d4dp_hidden: int | None = None       # D_4DP MLP width (mlp only; default: the preset's)


@dataclass(kw_only=True)
class RecipeConfig:
    strategy: str = "p4d"                # Tab. 4
    loss: str = "ld+ed"                  # Tab. 5
    time_cue: str = "tpe"                # Tab. 6
    tune: str = "tune-p+llm"             # Tab. 7


@dataclass(kw_only=True)
class LossWeights:
    """Weights of the loss terms; None keeps the student default (``LossConfig``). The loss preset
    zeroes the terms it leaves out."""

    ld_weight: float | None = None
    depth_weight: float | None = None
    flow_weight: float | None = None
    motion_weight: float | None = None
    camray_weight: float | None = None


@dataclass(kw_only=True)
class LoraConfig:
    r: int = 64
    alpha: int = 16
    dropout: float = 0.05


@dataclass(kw_only=True)
class OptimConfig:
    lr_projector: float = 1e-4           # E_p (and the 4d-pe encoding)
    lr_llm: float = 2e-5                 # LLM (or its LoRA adapters)
    lr_d4dp: float = 1e-4                # D_4DP
    lr_vision: float = 2e-6              # E_v (tune-all / tune-v)
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    grad_clip: float = 1.0               # 0 disables clipping
    grad_accum: int = 1                  # micro-steps per optimizer step
    max_steps: int = 100                 # optimizer steps
    warmup_steps: int = 0
    warmup_ratio: float = 0.03           # used when warmup_steps is 0
    min_lr_ratio: float = 0.0            # cosine floor as a fraction of each group's lr
    epochs: float | None = None          # set max_steps from epochs over the data (release: 10)
    global_batch: int | None = None      # set grad_accum = global_batch / (batch_size x processes) (release: 1024)


@dataclass(kw_only=True)
class AugmentConfig:
    hflip: float = 0.0                   # probability of a horizontal flip (replayed on the maps)
    # no temporal subsampling: dropping frames breaks the cached backward flow (t -> t-1) and the
    # teacher's 2-frame tubelets of F_4D (the removed --augment.temporal-subsample accepted only 1)


@dataclass(kw_only=True)
class CheckpointConfig:
    every: int = 0                       # save every K optimizer steps (0: only at the end)
    keep: int = 0                        # keep the newest K checkpoints (0: all)
    export: bool = True                  # write the inference export (OUT/export) at the end
    export_dtype: str = "bf16"           # --export-dtype: bf16 | fp32 weights in the export (8B: ≈16 vs ≈32 GB)


@dataclass(kw_only=True)
class LogConfig:
    every: int = 1                       # log every K optimizer steps
    progress: bool = True                # tqdm bar (rank 0)
    tensorboard: bool = False            # TensorBoard event files in OUT/tensorboard (needs pip install 'p4d[tensorboard]')


@dataclass(kw_only=True)
class RuntimeConfig:
    seed: int = 0
    device: str = "auto"                 # auto | cpu | cuda
    precision: str = "auto"              # auto (bf16-mixed on CUDA, fp32 on CPU) | fp32 | bf16-mixed | bf16-pure
    parallel: str = "auto"               # auto (fsdp for full-LLM tunes on >1 process, else ddp; none for 1) | none | ddp | fsdp
    backend: str | None = None           # process-group backend (default: nccl on CUDA, gloo on CPU)
    dist_timeout: float = 60.0           # minutes a collective may wait (rank 0's host build of an 8B student takes many)
    dump_grads_at: int | None = None     # debug: write OUT/grads-step-K.safetensors after step K's backward


@dataclass(kw_only=True)
class ExpectConfig:
    schema_version: int | None = None    # refuse a store of another cache schema version
    teacher_hash: str | None = None      # refuse a store made with other teacher weights
    num_frames: int | None = None        # refuse a store whose clips have another N (release: 16)


@dataclass(kw_only=True)
class TrainConfig:
    out: str = ""                        # --out DIR
    resume: str | None = None            # --resume: a checkpoint folder, or a run folder (its newest checkpoint)
    allow_teacher_change: bool = False   # --allow-teacher-change: resume on a cache of other teacher weights/schema
    probe_from: str | None = None        # --probe-from RUN: train only D_4DP on RUN's frozen student (p4d.train.probe)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    recipe: RecipeConfig = field(default_factory=RecipeConfig)
    loss: LossWeights = field(default_factory=LossWeights)
    lora: LoraConfig = field(default_factory=LoraConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    log: LogConfig = field(default_factory=LogConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    expect: ExpectConfig = field(default_factory=ExpectConfig)

    # ---- derived -----------------------------------------------------------------------
    @property
    def loss_terms(self) -> tuple[str, ...]:
        """Distillation terms on (Tab. 5 preset, only for the p4d strategy)."""
        return LOSS_PRESETS[self.recipe.loss] if self.recipe.strategy == "p4d" else ()

    def loss_weights(self, defaults: Mapping[str, float]) -> dict[str, float]:
        """{term_weight: value} for LossConfig: the preset's terms keep their (overridden) weight, others 0."""
        on = self.loss_terms
        out = {}
        for term in LOSS_TERMS:
            name = f"{term}_weight"
            override = getattr(self.loss, name)
            out[name] = 0.0 if term not in on else float(defaults[name] if override is None else override)
        return out

    @property
    def preset_record(self) -> dict[str, str]:
        """The keys `p4d eval report` reads from an export: strategy, loss, time_cue, trainable."""
        r = self.recipe
        return {"strategy": r.strategy, "loss": r.loss, "time_cue": r.time_cue, "trainable": r.tune}

    # ---- validation --------------------------------------------------------------------
    def validate(self) -> TrainConfig:
        """Check every field and cross-field rule; raise ConfigError naming the flag to fix."""
        _check_types(self, "")
        from p4d.train.model.config import ATTN_IMPLEMENTATIONS, STUDENT_PRESETS

        if self.model.config_file is None and self.model.preset is not None and self.model.preset not in STUDENT_PRESETS:
            raise ConfigError(f"--student {self.model.preset!r}: unknown preset (known: {', '.join(STUDENT_PRESETS)})")
        if not self.data.conversations:
            raise ConfigError("--data: expected a conversation .json/.jsonl file, found nothing")
        if not self.data.cache:
            raise ConfigError("--cache: expected the cache store written by `p4d precompute`, found nothing")
        if not self.out:
            raise ConfigError("--out: expected an output folder for checkpoints, logs and the export")
        r = self.recipe
        _choice("recipe.strategy", r.strategy, STRATEGIES)
        if r.strategy == "zero-shot":
            raise ConfigError("--strategy zero-shot: evaluates the untrained student (`p4d eval`); it has nothing "
                              "to train. Choose one of 4d-sft, 4d-concat, 4d-pe, p4d")
        _choice("recipe.loss", r.loss, tuple(LOSS_PRESETS))
        _choice("recipe.time-cue", r.time_cue, tuple(TIME_CUES))
        _choice("recipe.tune", r.tune, TRAINABILITY)
        if self.model.d4dp is not None:
            _choice("model.d4dp", self.model.d4dp, ("linear", "mlp"))
        if self.model.d4dp_time is not None:
            _choice("model.d4dp-time", self.model.d4dp_time, ("stride", "mean"))
        if (self.model.config_file is None and self.model.preset is None and not self.model.init_from
                and self.probe_from is None):  # a probe takes the source's student (p4d.train.probe)
            raise ConfigError(
                "--student: no student given; pass --student nvila-lite-2b|nvila-lite-8b (weights with "
                "--model.init-from NVILA_LITE_FOLDER, random otherwise), --model.init-from alone, "
                "or --student tiny for a smoke run")
        if self.model.attn is not None:
            _choice("model.attn", self.model.attn, ATTN_IMPLEMENTATIONS)
        _choice("runtime.device", self.runtime.device, DEVICES)
        _choice("export-dtype", self.checkpoint.export_dtype, EXPORT_DTYPES)
        if self.runtime.precision == "bf16":
            self.runtime.precision = "bf16-mixed"
        _choice("runtime.precision", self.runtime.precision, PRECISIONS)
        _choice("runtime.parallel", self.runtime.parallel, PARALLEL)
        if self.runtime.parallel == "fsdp" and r.tune.endswith("-lora"):
            raise ConfigError(f"--runtime.parallel fsdp: --recipe.tune {r.tune} trains LoRA adapters, which DDP trains "
                              "(FSDP2 shards full-weight recipes); pass --runtime.parallel ddp or auto")
        for flag, value, low in (
            ("data.batch-size", self.data.batch_size, 1), ("data.num-workers", self.data.num_workers, 0),
            ("data.prefetch-factor", self.data.prefetch_factor, 1), ("optim.grad-accum", self.optim.grad_accum, 1),
            ("optim.max-steps", self.optim.max_steps, 1), ("optim.warmup-steps", self.optim.warmup_steps, 0),
            ("checkpoint.every", self.checkpoint.every, 0), ("checkpoint.keep", self.checkpoint.keep, 0),
            ("log.every", self.log.every, 1), ("lora.r", self.lora.r, 1), ("lora.alpha", self.lora.alpha, 1),
        ):
            if value < low:
                raise ConfigError(f"--{flag}: expected an integer >= {low}, found {value}")
        for flag, value in (
            ("optim.lr-projector", self.optim.lr_projector), ("optim.lr-llm", self.optim.lr_llm),
            ("optim.lr-d4dp", self.optim.lr_d4dp), ("optim.lr-vision", self.optim.lr_vision),
            ("optim.weight-decay", self.optim.weight_decay), ("optim.grad-clip", self.optim.grad_clip),
            *((f"loss.{t}-weight", getattr(self.loss, f"{t}_weight")) for t in LOSS_TERMS),
        ):
            if value is not None and (not math.isfinite(value) or value < 0):
                raise ConfigError(f"--{flag}: expected a finite number >= 0, found {value}")
        for flag, value, low in (("data.max-length", self.data.max_length, 1),
                                 ("optim.global-batch", self.optim.global_batch, 1),
                                 ("expect.num-frames", self.expect.num_frames, 1)):
            if value is not None and value < low:
                raise ConfigError(f"--{flag}: expected an integer >= {low}, found {value}")
        if self.optim.epochs is not None and not (math.isfinite(self.optim.epochs) and self.optim.epochs > 0):
            raise ConfigError(f"--optim.epochs: expected a number > 0, found {self.optim.epochs}")
        for flag, value in (("optim.warmup-ratio", self.optim.warmup_ratio),
                            ("optim.min-lr-ratio", self.optim.min_lr_ratio), ("augment.hflip", self.augment.hflip),
                            ("lora.dropout", self.lora.dropout)):
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"--{flag}: expected a number in [0, 1], found {value}")
        if not all(0.0 <= b < 1.0 for b in self.optim.betas) or len(self.optim.betas) != 2:
            raise ConfigError(f"--optim.betas: expected two numbers in [0, 1), found {self.optim.betas}")
        # augmentation only where the cache can follow it
        if self.augment.hflip > 0:
            if r.strategy == "p4d" and "ld" in self.loss_terms and (self.loss.ld_weight is None or self.loss.ld_weight > 0):
                raise ConfigError(
                    f"--augment.hflip {self.augment.hflip}: refused while LD is on (F_4D does not mirror with the "
                    "image); set --augment.hflip 0, or --loss ed-only (the maps are mirrored exactly)")
            if r.strategy in ("4d-concat", "4d-pe"):
                raise ConfigError(
                    f"--augment.hflip {self.augment.hflip}: refused with --strategy {r.strategy}, whose input F_4D "
                    "does not mirror with the image; set --augment.hflip 0")
        if self.probe_from is not None:
            self._check_probe()
        if self.runtime.dump_grads_at is not None and self.runtime.dump_grads_at < 1:
            raise ConfigError(f"--runtime.dump-grads-at: expected a step >= 1, found {self.runtime.dump_grads_at}")
        if self.log.tensorboard:
            from p4d.errors import require_package

            try:
                require_package("tensorboard", "tensorboard")
            except ImportError as exc:
                raise ConfigError(f"--log.tensorboard true: {exc}") from None
        if not (math.isfinite(self.runtime.dist_timeout) and self.runtime.dist_timeout > 0):
            raise ConfigError(f"--runtime.dist-timeout: expected minutes > 0 (default 60), found {self.runtime.dist_timeout}")
        if self.runtime.backend not in (None, "gloo", "nccl"):
            raise ConfigError(f"--runtime.backend: expected gloo or nccl, found {self.runtime.backend!r}")
        return self

    def _check_probe(self) -> None:
        """--probe-from: D_4DP (strategy p4d) on the source's weights, with a term that trains it."""
        flag = f"--probe-from {self.probe_from}"
        if self.recipe.strategy != "p4d":
            raise ConfigError(f"{flag}: trains D_4DP on the frozen source student, which only --strategy p4d builds; "
                              f"drop --strategy {self.recipe.strategy} (the source run may be any 4d-sft or p4d run)")
        if self.model.init_from:
            raise ConfigError(f"{flag}: the student's weights come from the source run; drop --model.init-from")
        if self.runtime.parallel == "fsdp":
            raise ConfigError(f"{flag}: only D_4DP trains, which DDP replicates; pass --runtime.parallel ddp or auto")
        if all(getattr(self.loss, f"{t}_weight") == 0 for t in self.loss_terms):
            raise ConfigError(f"{flag}: every term of --loss {self.recipe.loss} has weight 0, so D_4DP would not "
                              "train; leave --loss.ld-weight (or a map's weight) above 0")

    # ---- (de)serialisation ---------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return _jsonable(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "config") -> TrainConfig:
        """Build from a nested mapping; unknown sections/fields are an error naming them. A saved
        config (any ``source`` but flags) may still hold a removed setting at its no-op value."""
        return _build(cls, data if source == "flags" else drop_retired(dict(data)), source, "")

    def save(self, path: str | Path) -> Path:
        """Write the resolved config as YAML (``OUT/config.yaml``)."""
        import yaml

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))
        return path


# ---- building from YAML + flags -----------------------------------------------------------------

def _choice(flag: str, value: Any, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ConfigError(f"--{flag} {value!r}: expected one of {', '.join(choices)}")


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def _hints(cls) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _coerce(value: Any, hint: Any, flag: str) -> Any:
    """Convert a YAML/CLI value to the field's type (strings from the command line included)."""
    args = typing.get_args(hint)
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType) and type(None) in args:
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null", "")):
            return None
        inner = [a for a in args if a is not type(None)][0]
        return _coerce(value, inner, flag)
    if origin is tuple:
        if isinstance(value, str):
            value = [v for v in value.replace(",", " ").split()]
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            raise ConfigError(f"--{flag}: expected {len(args)} comma-separated values, found {value!r}")
        return tuple(_coerce(v, a, flag) for v, a in zip(value, args))
    try:
        if hint is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on"):
                return True
            if isinstance(value, str) and value.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if hint is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return int(value)
        if hint is float:
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if hint is str:
            if not isinstance(value, (str, int, float)) or isinstance(value, bool):
                raise ValueError
            return str(value)
    except (TypeError, ValueError):
        name = getattr(hint, "__name__", str(hint))
        raise ConfigError(f"--{flag}: expected {'a bool (true/false)' if hint is bool else 'a ' + name}, "
                          f"found {value!r}") from None
    return value


def _build(cls, data: Mapping[str, Any], source: str, prefix: str):
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: section {prefix.rstrip('.') or '(top)'}: expected a mapping, found {data!r}")
    hints = _hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in data.items():
        name = str(key).replace("-", "_")
        if name not in names:
            raise ConfigError(f"{source}: unknown setting --{prefix}{str(key).replace('_', '-')}; expected one of "
                              f"{', '.join(sorted(prefix + n.replace('_', '-') for n in names))}")
        hint = hints[name]
        flag = f"{prefix}{name}".replace("_", "-")
        if dataclasses.is_dataclass(hint):
            kwargs[name] = _build(hint, value or {}, source, f"{prefix}{name}.")
        else:
            kwargs[name] = _coerce(value, hint, flag)
    return cls(**kwargs)


#: Short flags -> dotted settings.
SHORT_FLAGS = {
    "data": "data.conversations", "cache": "data.cache", "batch-size": "data.batch_size",
    "workers": "data.num_workers", "allow-missing-targets": "data.allow_missing_targets",
    "strategy": "recipe.strategy", "loss": "recipe.loss", "time-cue": "recipe.time_cue", "tune": "recipe.tune",
    "steps": "optim.max_steps", "seed": "runtime.seed", "export-dtype": "checkpoint.export_dtype", "device": "runtime.device", "student": "model.preset",
    "probe-from": "probe_from",
}


def parse_overrides(args: Sequence[str]) -> dict[str, Any]:
    """``["--optim.lr-llm", "1e-5", "--augment.hflip=0.5", "--data.allow-missing-targets"]`` →
    nested dict. A flag without a value (followed by another flag or nothing) means true."""
    out: dict[str, Any] = {}
    i = 0
    args = list(args)
    while i < len(args):
        arg = args[i]
        if not arg.startswith("--"):
            raise ConfigError(f"unexpected argument {arg!r}: settings are given as --SECTION.FIELD VALUE")
        key, eq, value = arg[2:].partition("=")
        if not eq:
            if i + 1 < len(args) and not args[i + 1].startswith("--"):
                value = args[i + 1]
                i += 1
            else:
                value = "true"
        key = SHORT_FLAGS.get(key, key)
        set_path(out, key, value)
        i += 1
    return out


def set_path(tree: dict, dotted: str, value: Any) -> None:
    parts = dotted.replace("-", "_").split(".")
    node = tree
    for p in parts[:-1]:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise ConfigError(f"--{dotted}: {p} is a setting, not a section")
    node[parts[-1]] = value


def merge(base: dict, extra: Mapping[str, Any]) -> dict:
    """Deep merge (``extra`` wins); keys are normalised to underscores."""
    out = {str(k).replace("-", "_"): v for k, v in base.items()}
    for key, value in extra.items():
        key = str(key).replace("-", "_")
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(dict(out[key]), value)
        else:
            out[key] = value
    return out


def load_yaml(path: str | Path) -> dict:
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"--config {path}: no such file")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"--config {path}: not valid YAML ({exc})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"--config {path}: expected a mapping of sections, found {type(data).__name__}")
    return data


def resolve_config(*, config_file: str | Path | None = None, overrides: Mapping[str, Any] | None = None,
                   recipe: str | None = None) -> TrainConfig:
    """defaults < recipe (``release`` | ``paper``, :mod:`p4d.train.recipes`) < YAML file < overrides
    (nested dict, e.g. from :func:`parse_overrides`), validated."""
    from p4d.train.recipes import recipe_settings

    tree: dict = recipe_settings(recipe) if recipe else {}
    if config_file:
        tree = merge(tree, load_yaml(config_file))
    if overrides:
        tree = merge(tree, overrides)
    source = f"--config {config_file}" if config_file else "flags"
    return TrainConfig.from_dict(tree, source=source).validate()


def _check_types(obj, prefix: str) -> None:
    """Re-coerce every field (catches wrong types set in code, not only from YAML/flags)."""
    hints = _hints(type(obj))
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            _check_types(value, f"{prefix}{f.name}.")
        else:
            setattr(obj, f.name, _coerce(value, hints[f.name], f"{prefix}{f.name}".replace("_", "-")))


#: Settings removed from TrainConfig → the one value saved runs may hold (dropped on reading them).
RETIRED = {("augment", "temporal_subsample"): 1}


def drop_retired(saved: dict) -> dict:
    """A saved config (meta.json, config.yaml) without the removed settings that hold their no-op
    value; another value is left in place and refused as an unknown setting."""
    out = {k: dict(v) if isinstance(v, Mapping) else v for k, v in saved.items()}
    for (section, name), noop in RETIRED.items():
        node = out.get(section)
        if isinstance(node, dict):
            for key in (name, name.replace("_", "-")):
                if key in node and node[key] == noop:
                    del node[key]
    return out


def config_from_json(text: str) -> TrainConfig:
    """The config stored in a checkpoint's meta.json."""
    return TrainConfig.from_dict(json.loads(text), source="meta.json")
