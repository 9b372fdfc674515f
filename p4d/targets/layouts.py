"""Named layouts of a batch of targets: p4d's (channels-last, as stored) or the release's.

``p4d``: ``f4d`` (B, taps, N', h', w', c'), ``depth`` (B, N, H, W, 1), ``flow`` (B, N, H, W, 2),
``motion`` (B, N, H, W, 1), ``camray`` (B, N, h_p, w_p, 6), plus ``frame_index`` (B, N) and
``timestamp`` (B, N) — what :func:`p4d.cache_schema.read_clips` returns.

``release``: what the public 4D-RGPT release's loss takes (channels-first): ``l4p_encs``
(B, taps, N', c', h', w') — the taps stacked and ``b hook (n h w) c -> b hook n c h w`` —,
``pred_depth`` (B, 1, N, H, W) depth (exp of the log-depth head), ``pred_flow_2d_backward``
(B, 2, N, H, W) pixels t -> t-1 (frame 0 as the head wrote it), ``pred_dyn_mask`` (B, 1, N, H, W)
logits, ``pred_camray`` (B, 6, N, h_p, w_p) raw Pluecker rays. For L4P: (B, 4, 8, 1408, 16, 16),
(B, 1, 16, 224, 224), (B, 2, 16, 224, 224), (B, 1, 16, 224, 224), (B, 6, 16, 16, 16).

Works on numpy arrays and torch tensors alike (a view, no copy, for both).
"""

from __future__ import annotations

from p4d.errors import ConfigError

__all__ = ["LAYOUTS", "RELEASE_NAMES", "to_layout"]

#: p4d name -> (release name, axis order from the p4d layout)
RELEASE_NAMES = {
    "f4d": ("l4p_encs", (0, 1, 2, 5, 3, 4)),
    "depth": ("pred_depth", (0, 4, 1, 2, 3)),
    "flow": ("pred_flow_2d_backward", (0, 4, 1, 2, 3)),
    "motion": ("pred_dyn_mask", (0, 4, 1, 2, 3)),
    "camray": ("pred_camray", (0, 4, 1, 2, 3)),
}
LAYOUTS = ("release", "p4d")


def check_layout(layout: str) -> str:
    if layout not in LAYOUTS:
        raise ConfigError(f"layout={layout!r}: expected one of {', '.join(LAYOUTS)}")
    return layout


def _permute(x, axes):
    return x.permute(*axes) if hasattr(x, "permute") else x.transpose(axes)


def to_layout(batch: dict, layout: str) -> dict:
    """``batch`` (p4d layout, batch first) in ``layout``; the release layout keeps only its five names."""
    if check_layout(layout) == "p4d":
        return dict(batch)
    return {RELEASE_NAMES[k][0]: _permute(v, RELEASE_NAMES[k][1]) for k, v in batch.items() if k in RELEASE_NAMES}
