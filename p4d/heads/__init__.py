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
from p4d.heads.geometry import (
    camera_centre_from_rays,
    camera_from_rays,
    intrinsics_from_rays,
    plucker_rays,
    pose_matrix,
    poses_relative_to_first,
    rays_relative_to_first,
    rotation_from_rays,
    transform_rays,
)
from p4d.heads.io import (
    HEADS_FILENAME,
    HeadsFileNotFoundError,
    heads_file,
    heads_from_bytes,
    heads_to_bytes,
    load_heads,
    read_heads_config,
    save_heads,
)
from p4d.heads.keys import heads_checkpoint_filter, load_published_heads

__all__ = [
    "FLOW_FRAME0_INVALID",
    "HEADS_FILENAME",
    "L4P_HEADS",
    "MODALITY_CHANNELS",
    "OUTPUT_ACTIVATION",
    "PUBLISHED_TASK_NAMES",
    "TINY_HEADS",
    "DenseHeads",
    "HeadsConfig",
    "HeadsFileNotFoundError",
    "TaskHead",
    "camera_centre_from_rays",
    "camera_from_rays",
    "count_parameters",
    "dpt_stage_shapes",
    "heads_checkpoint_filter",
    "heads_file",
    "heads_from_bytes",
    "heads_to_bytes",
    "intrinsics_from_rays",
    "load_heads",
    "load_published_heads",
    "plucker_rays",
    "pose_matrix",
    "poses_relative_to_first",
    "rays_relative_to_first",
    "read_heads_config",
    "rotation_from_rays",
    "save_heads",
    "transform_rays",
]
