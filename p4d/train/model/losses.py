"""The P4D losses (Eqs. 6–7): L = L_SFT + w_LD·L_LD + Σ_m λ_m·Δ_m.

Every function returns a float32 scalar that is 0 when prediction equals target. Shapes are
the cache's channels-last layouts: F_4D (B, taps, N', h', w', c'); depth / motion
(B, N, H, W, 1); flow (B, N, H, W, 2) with frame 0 invalid; camray (B, N, h_p, w_p, 6).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from p4d.errors import ConfigError
from p4d.train.model.tokenizer import IGNORE_INDEX

#: ε of the depth ED: log(pred + ε) vs log(target + ε), on both sides, as the release computes it.
DEPTH_EPS = 1e-8


def _check(name: str, pred: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    if tuple(pred.shape) != tuple(target.shape):
        raise ConfigError(
            f"targets[{name!r}]: expected shape {tuple(pred.shape)} (the prediction's), found {tuple(target.shape)}"
        )
    return pred.float(), target.to(device=pred.device, dtype=torch.float32)


def sft_loss(hidden: Tensor, labels: Tensor, lm_head) -> Tensor:
    """Causal-LM CE on answer tokens only: position i predicts labels[i + 1] where that is not −100.
    Logits are computed only at those positions (memory: never (B, L, vocab))."""
    target = labels[:, 1:]
    keep = target != IGNORE_INDEX
    if not bool(keep.any()):
        return hidden.sum() * 0.0
    logits = lm_head(hidden[:, :-1][keep]).float()
    return F.cross_entropy(logits, target[keep])


def latent_loss(pred: Tensor, target: Tensor, kind: str = "mse") -> Tensor:
    """L_LD: a per-token distance (over c') on each tap, averaged over tokens, then over taps."""
    pred, target = _check("f4d", pred, target)
    if kind == "mse":
        per_token = (pred - target).square().mean(-1)
    elif kind == "smooth_l1":
        per_token = F.smooth_l1_loss(pred, target, reduction="none").mean(-1)
    elif kind == "cosine":
        per_token = 1.0 - F.cosine_similarity(pred, target, dim=-1, eps=1e-8)
    else:
        raise ConfigError(f"LossConfig.ld: unknown {kind!r}")
    return per_token.flatten(2).mean(-1).mean()


def depth_loss(pred_log_depth: Tensor, target_depth: Tensor, kind: str = "log_mse") -> Tensor:
    """Δ_depth in log space as the release computes it: log(d̂ + ε) vs log(d + ε), ε = DEPTH_EPS on
    both sides, where d̂ = exp(the head's pre-exp output) and d the cached depth. log(d̂ + ε) is
    taken as logaddexp(log d̂, log ε), which never overflows.
    ``ssi``: the prediction gets a per-frame least-squares scale and shift first."""
    pred, target = _check("depth", pred_log_depth, target_depth)
    log_eps = torch.tensor(DEPTH_EPS, dtype=torch.float64).log().item()
    pred = torch.logaddexp(pred, torch.full_like(pred, log_eps))
    target = (target.clamp_min(0.0) + DEPTH_EPS).log()
    if kind == "log_mse":
        return (pred - target).square().mean()
    if kind == "ssi":
        p = pred.flatten(2)  # (B, N, H·W·1)
        t = target.flatten(2)
        pc = p - p.mean(-1, keepdim=True)
        tc = t - t.mean(-1, keepdim=True)
        scale = (pc * tc).sum(-1, keepdim=True) / pc.square().sum(-1, keepdim=True).clamp_min(1e-12)
        return (scale * pc - tc).square().mean()
    raise ConfigError(f"LossConfig.depth: unknown {kind!r}")


def flow_loss(pred: Tensor, target: Tensor, kind: str = "mse") -> Tensor:
    """Δ_flow in pixels over frames 1..N−1 (frame 0 has no previous frame and is ignored)."""
    pred, target = _check("flow", pred, target)
    if pred.shape[1] < 2:
        return pred.sum() * 0.0
    diff = pred[:, 1:] - target[:, 1:]
    if kind == "mse":
        return diff.square().mean()
    if kind == "epe":
        return torch.sqrt(diff.square().sum(-1) + 1e-12).mean()
    raise ConfigError(f"LossConfig.flow: unknown {kind!r}")


def motion_loss(pred_logits: Tensor, target_logits: Tensor, kind: str = "mse") -> Tensor:
    """Δ_motion on dynamic-mask logits. ``bce``: BCE-with-logits against σ(target) minus the
    target's entropy (the binary KL; same gradient as BCE, 0 at equality)."""
    pred, target = _check("motion", pred_logits, target_logits)
    if kind == "mse":
        return (pred - target).square().mean()
    if kind == "bce":
        prob = torch.sigmoid(target)
        bce = F.binary_cross_entropy_with_logits(pred, prob, reduction="none")
        entropy = F.binary_cross_entropy_with_logits(target, prob, reduction="none")
        return (bce - entropy).mean()
    raise ConfigError(f"LossConfig.motion: unknown {kind!r}")


def camray_loss(pred: Tensor, target: Tensor, kind: str = "mse") -> Tensor:
    """Δ_camray on the 6-D Plücker rays per patch."""
    pred, target = _check("camray", pred, target)
    if kind == "mse":
        return (pred - target).square().mean()
    if kind == "smooth_l1":
        return F.smooth_l1_loss(pred, target)
    raise ConfigError(f"LossConfig.camray: unknown {kind!r}")


#: Δ_m per modality; the prediction passed for depth is the pre-exp log-depth.
MAP_LOSSES = {"depth": depth_loss, "flow": flow_loss, "motion": motion_loss, "camray": camray_loss}
