"""The frozen L4P teacher: the VideoMAE v2 ViT-g/14 encoder E_4D, wiring to p4d.heads,
checkpoint key mapping and presets (l4p = the published architecture, tiny = same code, small dims).

    from p4d.teacher import build_teacher, get_preset
    teacher = build_teacher("l4p", weights="l4p_depth_flow_2d3dtrack_camray_dynseg_v1.ckpt", device="cuda",
                            dtype=torch.bfloat16)
    out = teacher(frames_uint8)   # (B, 16, 224, 224, 3) -> {"f4d", "depth", "flow", "motion", "camray"}

Submodules: presets (no torch), encoder, attention, model, checkpoint, info. Names are imported
lazily so that ``p4d.teacher.presets`` stays cheap for planners that only need shapes.
"""

from __future__ import annotations

from p4d import lazy_exports

_EXPORTS = {
    "TeacherPreset": "presets", "PRESETS": "presets", "get_preset": "presets",
    "VideoMAEv2Encoder": "encoder", "checkpoint_filter_fn": "encoder",
    "L4PTeacher": "model", "build_teacher": "model",
    "LoadReport": "checkpoint", "load_checkpoint_file": "checkpoint", "load_teacher_weights": "checkpoint",
    "export_safetensors": "checkpoint", "weights_hash": "checkpoint",
    "format_info": "info",
}
__getattr__, __all__ = lazy_exports(__name__, {name: f"p4d.teacher.{module}" for name, module in _EXPORTS.items()})
