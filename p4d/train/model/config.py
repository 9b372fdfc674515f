"""Student configuration: :class:`StudentConfig` (architecture, TPE, strategy, precision) and
:class:`LossConfig` (the P4D loss terms and weights), plus the named presets.

Presets: ``tiny`` (tests; SigLIP 56 px / patch 14 → 4×4 patches → 2×2 tokens per frame, Qwen2
hidden 64), ``nvila-lite-8b`` and ``nvila-lite-2b`` (the published NVILA-Lite sizes: SigLIP
so400m/14 at 448 px → 32×32 patches → 11×11 tokens per frame; Qwen2-7B / Qwen2-1.5B LLMs).

Loss and D_4DP defaults follow the public 4D-RGPT release's code (notes/release.md §3-4):
L_LD 0.01; ED depth 0.1, flow 0.001, motion 0.01, camray 1e-5; D_4DP one Linear per tap on
frames 0, 2, …, 14. The paper's readings stay as options (``d4dp="mlp"``, ``d4dp_time="mean"``,
other weights through ``LossConfig``).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Mapping

import torch

from p4d.errors import ConfigError, check_fields
from p4d.train.model.d4dp import D4DP_HEADS, D4DP_TIME

TPE_MODES = ("add", "mark", "prompt", "off")
STRATEGIES = ("p4d", "4d-sft", "4d-concat", "4d-pe")
#: ``auto`` = flash_attention_2 on CUDA when the flash_attn package is installed, sdpa otherwise
#: (:func:`resolve_attn`, decided where the model is built, so an export records ``auto``).
ATTN_IMPLEMENTATIONS = ("auto", "eager", "sdpa", "flash_attention_2")
DTYPES: dict[str, torch.dtype] = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
LD_KINDS = ("mse", "cosine", "smooth_l1")
DEPTH_KINDS = ("log_mse", "ssi")
FLOW_KINDS = ("mse", "epe")
MOTION_KINDS = ("mse", "bce")
CAMRAY_KINDS = ("mse", "smooth_l1")


def resolve_attn(attn: str, device: torch.device | str | None = None) -> str:
    """The attention implementation handed to transformers for ``attn`` on ``device`` (None: the
    current default device): ``auto`` -> ``flash_attention_2`` on CUDA with the flash_attn package
    installed, else ``sdpa``; other values are kept, ``flash_attention_2`` is refused off CUDA or
    without flash_attn (ConfigError naming what is missing)."""
    import importlib.util

    kind = torch.device(device).type if device is not None else torch.get_default_device().type
    has_flash = importlib.util.find_spec("flash_attn") is not None
    if attn == "auto":
        return "flash_attention_2" if kind == "cuda" and has_flash else "sdpa"
    if attn == "flash_attention_2" and kind != "meta" and (kind != "cuda" or not has_flash):
        need = "a CUDA device" if kind != "cuda" else "the flash_attn package (pip install flash-attn)"
        raise ConfigError(f"attn 'flash_attention_2': needs {need}, found device {kind}; use auto, sdpa or eager")
    return attn


def _choice(owner: str, name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{owner}.{name}: expected one of {choices}, found {value!r}")


def _non_negative(owner: str, name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ConfigError(f"{owner}.{name}: expected a finite number >= 0, found {value!r}")


@dataclass(frozen=True, kw_only=True)
class LossConfig:
    """L = L_SFT + ld_weight·L_LD + Σ_m λ_m·Δ_m (Eqs. 6–7). A weight of 0 drops its term.

    ld: per-token distance between F̂_4D and F_4D on each tap, averaged over taps
        (``mse`` default; ``cosine`` = 1 − cos per token; ``smooth_l1``).
    depth: on the head's pre-exp log-depth vs log of the cached depth (``log_mse`` default;
        ``ssi`` = MSE after a per-frame least-squares scale and shift of the prediction).
    flow: on backward flow in pixels over frames 1..N−1, frame 0 masked (``mse`` default;
        ``epe`` = mean end-point error).
    motion: on dynamic-mask logits (``mse`` default; ``bce`` = BCE-with-logits against the
        teacher's sigmoid probabilities).
    camray: on the 6-D Plücker rays (``mse`` default; ``smooth_l1``).
    log_all: compute and log every ED term whose map and head exist even when its weight is 0
        (no gradient; the release logs them all).

    Defaults are the release's (``sft.sh``): LD 0.01, depth 0.1, flow 0.001, motion 0.01,
    camray 1e-5.
    """

    ld_weight: float = 0.01
    ld: str = "mse"
    depth_weight: float = 0.1
    depth: str = "log_mse"
    flow_weight: float = 0.001
    flow: str = "mse"
    motion_weight: float = 0.01
    motion: str = "mse"
    camray_weight: float = 1e-5
    camray: str = "mse"
    log_all: bool = True

    def __post_init__(self) -> None:
        for name in ("ld_weight", "depth_weight", "flow_weight", "motion_weight", "camray_weight"):
            _non_negative("LossConfig", name, getattr(self, name))
        _choice("LossConfig", "ld", self.ld, LD_KINDS)
        _choice("LossConfig", "depth", self.depth, DEPTH_KINDS)
        _choice("LossConfig", "flow", self.flow, FLOW_KINDS)
        _choice("LossConfig", "motion", self.motion, MOTION_KINDS)
        _choice("LossConfig", "camray", self.camray, CAMRAY_KINDS)

    def weight(self, modality: str) -> float:
        """λ_m of a head modality (depth, flow, motion, camray)."""
        return float(getattr(self, f"{modality}_weight"))

    def kind(self, modality: str) -> str:
        return str(getattr(self, modality))


@dataclass(frozen=True, kw_only=True)
class StudentConfig:
    """The student: E_v (SigLIP) + TPE + E_p (NVILA-Lite projector) + LLM (Qwen2) [+ D_4DP, D_m].

    vision: SiglipVisionConfig fields (hidden width D of E_v, image_size, patch_size ...).
    llm: Qwen2Config fields (hidden width c of the LLM ...).
    select_layer: E_v features are ``hidden_states[select_layer]`` (NVILA: −2).
    tpe: ``add`` (Eq. 5, sinusoid of the timestamp added to E_v features), ``mark`` (burn
        "t s" into each frame), ``prompt`` (duration/fps sentence before the question), ``off``.
    tpe_temperature: T of Eq. 5.
    strategy: ``p4d`` (D_4DP + frozen D_m, losses SFT+LD+ED), ``4d-sft`` (SFT only),
        ``4d-concat`` (cached F_4D resampled to the patch grid and concatenated to E_v features;
        the projector input is widened), ``4d-pe`` (F_4D → linear → added to E_v features).
        The last two need F_4D at inference too.
    f4d_shape: (taps, N', h', w', c') of the cache's F_4D; filled by :func:`build_student`.
    f4d_input_tap: the tap fed to the input for 4d-concat / 4d-pe.
    d4dp: D_4DP per-tap map: ``linear`` (the release: one Linear(c, c'), normal(0, 0.1)) or
        ``mlp`` (c → d4dp_hidden → c', GELU, Xavier; the model card's reading).
    d4dp_time: N → N' for D_4DP: ``stride`` (the release: frames 0, 2, …) or ``mean`` (average
        consecutive frame pairs).
    d4dp_hidden: D_4DP MLP width (``mlp`` only; model card: 2560).
    attn: attention of E_v and the LLM: ``auto`` (the NVILA presets: flash_attention_2 on CUDA
        when flash_attn is installed, else sdpa; :func:`resolve_attn`), ``sdpa``, ``eager`` or
        ``flash_attention_2``. The tiny preset keeps ``eager``. Determinism: the 4D-RGPT release
        reports a bf16 argmax drift for Qwen2 under SDPA on transformers 5.0 (close-call MCQ
        tokens, R4D-Bench 30 vs 38.9; notes/peers.md), so evaluations meant to match published
        numbers load the student with ``eager`` (``p4d eval --attn eager``).
    gradient_checkpointing: activation checkpointing of E_v and the LLM in training (recomputes
        each block's forward in the backward; same gradients, less memory). On for the NVILA presets.
    dtype: parameter dtype of E_v, E_p, LLM and D_4DP (losses are computed in float32).
    resize: the Pillow filter that squashes frames to ``vision['image_size']``
        (:func:`p4d.video.student_frames`; ``bicubic`` = the release's Pillow default).
    image_mean, image_std: normalisation after scaling to [0, 1] (SigLIP: 0.5, 0.5).
    video_token, frame_end_token: the per-visual-token placeholder and the token after each frame.
    """

    name: str = "custom"
    vision: Mapping[str, Any] = field(default_factory=dict)
    llm: Mapping[str, Any] = field(default_factory=dict)
    select_layer: int = -2
    tpe: str = "add"
    tpe_temperature: float = 10000.0
    strategy: str = "p4d"
    f4d_shape: tuple[int, int, int, int, int] | None = None
    f4d_input_tap: int = -1
    d4dp: str = "linear"
    d4dp_time: str = "stride"
    d4dp_hidden: int = 2560
    attn: str = "eager"
    gradient_checkpointing: bool = False
    dtype: str = "float32"
    resize: str = "bicubic"
    image_mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    image_std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    video_token: str = "<vila/video>"
    frame_end_token: str = "\n"
    loss: LossConfig = field(default_factory=LossConfig)

    def __post_init__(self) -> None:
        own = "StudentConfig"
        for name in ("vision", "llm"):
            value = getattr(self, name)
            if not isinstance(value, Mapping):
                raise ConfigError(f"{own}.{name}: expected a mapping of config fields, found {type(value).__name__}")
            object.__setattr__(self, name, dict(value))
        for key in ("hidden_size", "image_size", "patch_size", "num_hidden_layers"):
            if not isinstance(self.vision.get(key), int) or self.vision[key] <= 0:
                raise ConfigError(f"{own}.vision[{key!r}]: expected a positive int, found {self.vision.get(key)!r}")
        for key in ("hidden_size", "vocab_size", "num_hidden_layers"):
            if not isinstance(self.llm.get(key), int) or self.llm[key] <= 0:
                raise ConfigError(f"{own}.llm[{key!r}]: expected a positive int, found {self.llm.get(key)!r}")
        if self.vision["image_size"] % self.vision["patch_size"]:
            raise ConfigError(
                f"{own}.vision: image_size {self.vision['image_size']} is not a multiple of "
                f"patch_size {self.vision['patch_size']}"
            )
        layers = self.vision["num_hidden_layers"]
        if not -layers <= self.select_layer <= layers or self.select_layer == 0:
            raise ConfigError(
                f"{own}.select_layer: expected a hidden-state index in [-{layers}, {layers}] other than 0, "
                f"found {self.select_layer}"
            )
        _choice(own, "tpe", self.tpe, TPE_MODES)
        _choice(own, "strategy", self.strategy, STRATEGIES)
        _choice(own, "attn", self.attn, ATTN_IMPLEMENTATIONS)
        _choice(own, "dtype", self.dtype, tuple(DTYPES))
        _choice(own, "resize", self.resize, ("bicubic", "bilinear"))
        _choice(own, "d4dp", self.d4dp, D4DP_HEADS)
        _choice(own, "d4dp_time", self.d4dp_time, D4DP_TIME)
        if not (isinstance(self.tpe_temperature, (int, float)) and self.tpe_temperature > 1):
            raise ConfigError(f"{own}.tpe_temperature: expected a number > 1, found {self.tpe_temperature!r}")
        if not isinstance(self.gradient_checkpointing, bool):
            raise ConfigError(f"{own}.gradient_checkpointing: expected true or false, found {self.gradient_checkpointing!r}")
        if not isinstance(self.d4dp_hidden, int) or self.d4dp_hidden <= 0:
            raise ConfigError(f"{own}.d4dp_hidden: expected a positive int, found {self.d4dp_hidden!r}")
        if self.f4d_shape is not None:
            shape = tuple(self.f4d_shape)
            if len(shape) != 5 or any(not isinstance(v, int) or v <= 0 for v in shape):
                raise ConfigError(
                    f"{own}.f4d_shape: expected (taps, N', h', w', c') positive ints, found {self.f4d_shape!r}"
                )
            object.__setattr__(self, "f4d_shape", shape)
            if not -shape[0] <= self.f4d_input_tap < shape[0]:
                raise ConfigError(
                    f"{own}.f4d_input_tap: expected an index into {shape[0]} taps, found {self.f4d_input_tap}"
                )
        for name in ("image_mean", "image_std"):
            value = tuple(float(v) for v in getattr(self, name))
            if len(value) != 3:
                raise ConfigError(f"{own}.{name}: expected 3 numbers, found {getattr(self, name)!r}")
            object.__setattr__(self, name, value)
        if isinstance(self.loss, Mapping):
            object.__setattr__(self, "loss", LossConfig(**self.loss))
        if not isinstance(self.loss, LossConfig):
            raise ConfigError(f"{own}.loss: expected a LossConfig, found {type(self.loss).__name__}")

    # ---- derived sizes -------------------------------------------------------------------
    @property
    def vision_width(self) -> int:
        """D: width of E_v features (and of the TPE)."""
        return int(self.vision["hidden_size"])

    @property
    def llm_width(self) -> int:
        """c: width of the LLM hidden states."""
        return int(self.llm["hidden_size"])

    @property
    def image_size(self) -> int:
        return int(self.vision["image_size"])

    @property
    def patch_grid(self) -> int:
        """Patches per side of E_v (448/14 = 32)."""
        return self.image_size // int(self.vision["patch_size"])

    @property
    def token_grid(self) -> tuple[int, int]:
        """(h, w): visual tokens per frame side after the 3×3 downsample (32 → 11)."""
        side = math.ceil(self.patch_grid / 3)
        return (side, side)

    @property
    def tokens_per_frame(self) -> int:
        """h·w visual tokens plus one frame-end token."""
        h, w = self.token_grid
        return h * w + 1

    @property
    def needs_f4d_input(self) -> bool:
        """4d-concat and 4d-pe read the cached F_4D at inference too."""
        return self.strategy in ("4d-concat", "4d-pe")

    @property
    def distills(self) -> bool:
        """Whether D_4DP / D_m are built (strategy p4d)."""
        return self.strategy == "p4d"

    @property
    def torch_dtype(self) -> torch.dtype:
        return DTYPES[self.dtype]

    # ---- (de)serialisation ----------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        for k, v in out.items():
            if isinstance(v, tuple):
                out[k] = list(v)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "StudentConfig":
        """Inverse of :meth:`to_dict`; unknown keys are an error naming them."""
        check_fields("StudentConfig", cls, data)
        kwargs = dict(data)
        for key in ("f4d_shape", "image_mean", "image_std"):
            if isinstance(kwargs.get(key), list):
                kwargs[key] = tuple(kwargs[key])
        if isinstance(kwargs.get("loss"), Mapping):
            check_fields("StudentConfig.loss", LossConfig, kwargs["loss"])
            kwargs["loss"] = LossConfig(**kwargs["loss"])
        return cls(**kwargs)

    def replace(self, **changes: Any) -> "StudentConfig":
        """A copy with ``changes`` applied (validated again)."""
        return dataclasses.replace(self, **changes)


# --------------------------------------------------------------------------------------------
# presets

_SIGLIP_SO400M_448 = dict(
    model_type="siglip_vision_model",
    image_size=448,
    patch_size=14,
    hidden_size=1152,
    intermediate_size=4304,
    num_hidden_layers=27,
    num_attention_heads=16,
    hidden_act="gelu_pytorch_tanh",
    layer_norm_eps=1e-6,
    vision_use_head=False,
)

_QWEN2_7B = dict(
    model_type="qwen2",
    vocab_size=152064,
    hidden_size=3584,
    intermediate_size=18944,
    num_hidden_layers=28,
    num_attention_heads=28,
    num_key_value_heads=4,
    max_position_embeddings=32768,
    rms_norm_eps=1e-6,
    rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
    tie_word_embeddings=False,
    bos_token_id=151643,
    eos_token_id=151645,
    pad_token_id=151643,
)

_QWEN2_1_5B = dict(
    _QWEN2_7B,
    vocab_size=151936,
    hidden_size=1536,
    intermediate_size=8960,
    num_attention_heads=12,
    num_key_value_heads=2,
    tie_word_embeddings=True,
)

#: Tiny sizes for CPU tests. The token ids match :func:`p4d.train.model.tokenizer.build_tiny_tokenizer`.
TINY = StudentConfig(
    name="tiny",
    vision=dict(
        model_type="siglip_vision_model",
        image_size=56,
        patch_size=14,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        vision_use_head=False,
    ),
    llm=dict(
        model_type="qwen2",
        vocab_size=320,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        tie_word_embeddings=False,
        bos_token_id=None,
        eos_token_id=3,
        pad_token_id=1,
    ),
    d4dp_hidden=48,
)

#: NVILA-Lite-8B: SigLIP so400m/14 @ 448 + 3×3 downsample projector + Qwen2-7B (hidden 3584).
NVILA_LITE_8B = StudentConfig(name="nvila-lite-8b", vision=_SIGLIP_SO400M_448, llm=_QWEN2_7B, dtype="bfloat16",
                              attn="auto", gradient_checkpointing=True)

#: NVILA-Lite-2B: same E_v and projector layout, Qwen2-1.5B LLM (hidden 1536, tied embeddings).
NVILA_LITE_2B = StudentConfig(name="nvila-lite-2b", vision=_SIGLIP_SO400M_448, llm=_QWEN2_1_5B, dtype="bfloat16",
                              attn="auto", gradient_checkpointing=True)

STUDENT_PRESETS: dict[str, StudentConfig] = {c.name: c for c in (TINY, NVILA_LITE_8B, NVILA_LITE_2B)}


def student_preset(name: str, **overrides: Any) -> StudentConfig:
    """A named preset (``tiny``, ``nvila-lite-8b``, ``nvila-lite-2b``) with field overrides."""
    if name not in STUDENT_PRESETS:
        raise ConfigError(f"--student-preset: unknown {name!r}; expected one of {tuple(STUDENT_PRESETS)}")
    return STUDENT_PRESETS[name].replace(**overrides) if overrides else STUDENT_PRESETS[name]
