"""The 4D-RGPT student on NVILA-Lite (E_v SigLIP + TPE + E_p projector + Qwen2 LLM, with the
training-only D_4DP and frozen D_m), its losses, checkpoint loading and export.
See :mod:`p4d.train` for the API summary."""

from p4d.train.model.checkpoint import (
    CheckpointNotFoundError,
    config_from_checkpoint,
    load_nvila_lite,
    load_nvila_lite_weights,
    read_safetensors_folder,
)
from p4d.train.model.config import (
    NVILA_LITE_2B,
    NVILA_LITE_8B,
    STRATEGIES,
    STUDENT_PRESETS,
    TINY,
    TPE_MODES,
    LossConfig,
    StudentConfig,
    resolve_attn,
    student_preset,
)
from p4d.train.model.d4dp import D4DP, rearrange_to_teacher_grid
from p4d.train.model.export import STUDENT_FILE, export_student, load_exported_student, read_exported_config
from p4d.train.model.losses import (
    MAP_LOSSES,
    camray_loss,
    depth_loss,
    flow_loss,
    latent_loss,
    motion_loss,
    sft_loss,
)
from p4d.train.model.projector import DownSample3x3, NvilaLiteProjector
from p4d.train.model.student import TRAINING_ONLY_MODULES, Student, build_student, resolve_f4d_shape
from p4d.train.model.tokenizer import (
    IGNORE_INDEX,
    SpecialIds,
    build_tiny_tokenizer,
    encode_chat,
    load_tokenizer,
    pad_batch,
    save_tokenizer,
    special_ids,
    tokenizer_fingerprint,
)
from p4d.train.model.tpe import mark_timestamps, time_prompt, timestamp_pe
from p4d.train.model.trainability import TRAINABILITY_PRESETS, LoraSettings, apply_trainability, merge_lora
from p4d.train.model.vision import preprocess_frames

__all__ = [
    "D4DP",
    "IGNORE_INDEX",
    "MAP_LOSSES",
    "NVILA_LITE_2B",
    "NVILA_LITE_8B",
    "STRATEGIES",
    "STUDENT_FILE",
    "STUDENT_PRESETS",
    "TINY",
    "TRAINABILITY_PRESETS",
    "TPE_MODES",
    "TRAINING_ONLY_MODULES",
    "CheckpointNotFoundError",
    "DownSample3x3",
    "LoraSettings",
    "LossConfig",
    "NvilaLiteProjector",
    "SpecialIds",
    "Student",
    "StudentConfig",
    "apply_trainability",
    "build_student",
    "build_tiny_tokenizer",
    "camray_loss",
    "config_from_checkpoint",
    "depth_loss",
    "encode_chat",
    "export_student",
    "flow_loss",
    "latent_loss",
    "load_exported_student",
    "load_nvila_lite",
    "load_nvila_lite_weights",
    "load_tokenizer",
    "mark_timestamps",
    "merge_lora",
    "motion_loss",
    "pad_batch",
    "preprocess_frames",
    "read_exported_config",
    "read_safetensors_folder",
    "rearrange_to_teacher_grid",
    "resolve_attn",
    "resolve_f4d_shape",
    "save_tokenizer",
    "sft_loss",
    "special_ids",
    "student_preset",
    "time_prompt",
    "timestamp_pe",
    "tokenizer_fingerprint",
]
