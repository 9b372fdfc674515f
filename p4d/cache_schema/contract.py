"""Names and rules both sides of the cache must agree on, with one home each.

- :data:`HEADS_FILE`: the side file holding the teacher's D_m heads (written by precompute, read
  by train and inspect to rebuild the frozen heads without the teacher).
- :data:`MAP_CHANNELS`: channels of each map modality (the heads' output channels, the stored
  arrays' last dimension).
- :func:`file_fingerprint`: how a source video is recognised (``videos.json`` records it at plan
  time; train matches conversation records by it when paths differ).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from p4d.cache_schema.spec import MAP_CHANNELS

HEADS_FILE = "heads.safetensors"
FINGERPRINT_BYTES = 1 << 20  # the size and the first MiB: cheap, and catches a replaced file

__all__ = ["HEADS_FILE", "MAP_CHANNELS", "FINGERPRINT_BYTES", "file_fingerprint"]


def file_fingerprint(path: str | Path) -> tuple[int, str]:
    """(size in bytes, sha256 of the size + NUL + the first MiB, 16 hex digits); (0, '') if unreadable."""
    try:
        with open(path, "rb") as f:
            head = f.read(FINGERPRINT_BYTES)
        size = os.stat(path).st_size
    except OSError:
        return 0, ""
    return size, hashlib.sha256(str(size).encode() + b"\0" + head).hexdigest()[:16]
