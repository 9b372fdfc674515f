"""The D_m decoders (3D-conv DPT heads for depth, flow, motion, camray) and ray/camera
geometry. Shared by the teacher (makes P_m) and the student (frozen copies make P̂_m, Eq. 4).

Imports torch, numpy and safetensors only (and p4d.errors): importable without the encoder.
"""

from p4d.heads.config import (
    FLOW_FRAME0_INVALID,
    L4P_HEADS,
    MODALITY_CHANNELS,
    PUBLISHED_TASK_NAMES,
    TINY_HEADS,
    HeadsConfig,
)
from p4d.heads.dense import OUTPUT_ACTIVATION, DenseHeads, TaskHead, count_parameters, dpt_stage_shapes

__all__ = [
    "FLOW_FRAME0_INVALID",
    "L4P_HEADS",
    "MODALITY_CHANNELS",
    "OUTPUT_ACTIVATION",
    "PUBLISHED_TASK_NAMES",
    "TINY_HEADS",
    "DenseHeads",
    "HeadsConfig",
    "TaskHead",
    "count_parameters",
    "dpt_stage_shapes",
]
