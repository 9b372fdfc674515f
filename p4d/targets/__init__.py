"""The cache outside p4d's trainer: targets by video + frame indices, in the release's layout.

For a trainer of one's own (a VILA-style fork, HF Trainer, Lightning, a hand loop)::

    from p4d.targets import open_targets
    targets = open_targets("cache.zarr", layout="release", device="cuda")
    out = targets.get(["videos/a.mp4", "videos/b.mp4"], frame_indices)   # frame_indices (B, N)
    out["l4p_encs"]       # (B, taps, N', c', h', w')  = (B, 4, 8, 1408, 16, 16) for L4P

Modules: ``lookup`` (:class:`TargetReader`, :func:`open_targets`: the miss rules), ``layouts``
(``release`` / ``p4d`` names and axis orders), ``adapter`` (:class:`CachedL4P`, a drop-in for an
online L4P adapter), ``dataset`` (:class:`TargetDataset`, :func:`collate_targets`). numpy only at
import; torch is used when installed (tensors on the caller's device, decoded there).
Never imports the teacher or precompute (import-linter contract ``targets-without-teacher``).
"""

from p4d import lazy_exports

__getattr__, __all__ = lazy_exports(__name__, {
    "open_targets": "p4d.targets.lookup",
    "TargetReader": "p4d.targets.lookup",
    "MissingTargetsError": "p4d.targets.lookup",
    "MISS_REASONS": "p4d.targets.lookup",
    "LAYOUTS": "p4d.targets.layouts",
    "to_layout": "p4d.targets.layouts",
    "CachedL4P": "p4d.targets.adapter",
    "LowLevelPerceptionOutput": "p4d.targets.adapter",
    "TargetDataset": "p4d.targets.dataset",
    "collate_targets": "p4d.targets.dataset",
})
