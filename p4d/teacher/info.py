"""``p4d teacher info``: parameters, FLOPs per clip and output shapes of a preset, without weights.

Everything is computed on the meta device (no memory, no compute). FLOPs count a multiply-add
as 2: the encoder's analytically (linear layers: 2·L·(4c'² + 2c'·mlp) per block, attention:
2·2·L²·c' per block for q·kᵀ and the weighted sum of v, the tubelet Conv3d), the heads' from the
shapes of every Conv3d / ConvTranspose3d they run. LayerNorm, GELU, softmax, interpolation and
biases are left out (a few per cent at most).
"""

from __future__ import annotations

import torch
from torch import nn

from p4d.heads import DenseHeads
from p4d.teacher.model import L4PTeacher
from p4d.teacher.presets import TeacherPreset, get_preset


def encoder_flops(preset: TeacherPreset, num_blocks: int | None = None) -> dict[str, int]:
    """FLOPs of one clip through the patch embedding and the first ``num_blocks`` blocks (default all)."""
    p = preset
    blocks = p.depth if num_blocks is None else num_blocks
    L, D, M = p.num_tokens, p.embed_dim, p.mlp_dim
    patch = 2 * L * (3 * p.tubelet * p.patch_size**2) * D
    linear = 2 * L * (3 * D * D + D * D + 2 * D * M)  # qkv, proj, fc1, fc2
    attention = 2 * 2 * L * L * D  # q·kᵀ and softmax·v over all heads
    return {"patch_embed": patch, "linear": blocks * linear, "attention": blocks * attention}


def conv_flops(heads: nn.Module, f4d: list[torch.Tensor]) -> int:
    """FLOPs of every Conv3d / ConvTranspose3d in one forward of ``heads`` on ``f4d`` (batch 1)."""
    total = 0

    def hook(module: nn.Module, inputs, output) -> None:
        nonlocal total
        kernel = module.weight.shape[2:].numel()
        if isinstance(module, nn.ConvTranspose3d):  # every input voxel scatters into out_ch × kernel
            total += 2 * inputs[0].numel() * module.out_channels * kernel // module.groups
        else:  # every output voxel gathers in_ch × kernel
            total += 2 * output.numel() * (module.in_channels // module.groups) * kernel
    handles = [m.register_forward_hook(hook) for m in heads.modules() if isinstance(m, (nn.Conv3d, nn.ConvTranspose3d))]
    try:
        heads(f4d)
    finally:
        for h in handles:
            h.remove()
    return total


def teacher_stats(preset: str | TeacherPreset, *, flag: str = "--preset") -> dict:
    """Parameters, FLOPs (batch 1) and output shapes (batch B=1) of a preset, on the meta device."""
    p = get_preset(preset, flag=flag)
    model = L4PTeacher(p, device="meta")
    n, h, w, c = p.latent_grid
    taps = [torch.empty(1, n, h, w, c, device="meta") for _ in p.taps]
    params = {"encoder": sum(t.numel() for t in model.encoder.parameters())}
    flops: dict[str, int] = {}
    for name, flop in encoder_flops(p, num_blocks=max(p.taps)).items():
        flops[f"encoder {name}"] = flop
    shapes = {"frames": (1, p.num_frames, p.img_size, p.img_size, 3), "f4d": (1, len(p.taps), n, h, w, c)}
    for modality, head in model.heads.heads.items():
        params[f"heads.{modality}"] = sum(t.numel() for t in head.parameters())
        single = DenseHeads(p.heads_config((modality,)), device="meta")
        flops[f"heads.{modality} convs"] = conv_flops(single, taps)
        shapes[modality] = tuple(single(taps)[modality].shape)
    params["total"] = sum(t.numel() for t in model.parameters())
    flops["total"] = sum(flops.values())
    return {"preset": p, "params": params, "flops": flops, "shapes": shapes}


def _human(n: float, unit: str) -> str:
    for scale, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if n >= scale:
            return f"{n / scale:.2f} {prefix}{unit}"
    return f"{n:.0f} {unit}"


def format_info(preset_name: str) -> str:
    """The text of ``p4d teacher info --preset NAME``."""
    s = teacher_stats(preset_name)
    p: TeacherPreset = s["preset"]
    last = max(p.taps)
    rest = encoder_flops(p, p.depth - last)
    lines = [f"teacher preset {p.name!r}: {p.describe()}", "", "parameters"]
    lines += [f"  {k:16s} {v:>15,d}  ({_human(v, '')})".rstrip() for k, v in s["params"].items()]
    lines += [
        "",
        f"FLOPs per clip (one {p.num_frames}-frame clip, multiply-add = 2; the encoder runs blocks 1..{last}, "
        f"the last tapped; running all {p.depth} would add {_human(rest['linear'] + rest['attention'], 'FLOP')})",
    ]
    lines += [f"  {k:22s} {_human(v, 'FLOP')}" for k, v in s["flops"].items()]
    lines += ["", "output shapes (B = 1)"]
    n, h, w, c = p.latent_grid
    notes = {
        "frames": "uint8 input; or float (B, 3, N, H, W), ImageNet-normalised",
        "f4d": f"F_4D: encoder layers {list(p.taps)}, each (B, N', h', w', c') = (B, {n}, {h}, {w}, {c})",
        "depth": "depth > 0 (exp of log-depth)",
        "flow": "backward flow t -> t-1, pixels; frame 0 invalid",
        "motion": "dynamic-mask logits",
        "camray": "Plücker rays (d, o x d) per patch, relative to frame 0",
    }
    lines += [f"  {k:8s} {str(v):28s} {notes.get(k, '')}" for k, v in s["shapes"].items()]
    return "\n".join(lines)
