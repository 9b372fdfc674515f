"""glibc malloc tuned for a worker's large short-lived buffers (F_4D encode: tens of MB per clip).

glibc serves an allocation above its mmap threshold with a fresh ``mmap`` and unmaps it on free,
so every such buffer is page-faulted in again and zeroed by the kernel. dask's nannies start
workers with ``MALLOC_TRIM_THRESHOLD_=65536``, which also pins that threshold at 128 KiB, so at
paper shapes the encode's float32/float64 temporaries (12-46 MB per clip-tap or clip) cost ~300
ms of system time per clip against ~80 ms of arithmetic (``p4d bench precompute``'s encode row).

:func:`tune_malloc` raises the mmap and trim thresholds to 256 MiB once per process, so freed
buffers are reused: the process keeps its high-water mark (bounded by the shards in flight, flat in
the number of videos) instead of returning it to the OS after each clip. The price is memory held:
two threads encoding paper-shape clips, with dask's setting, 360 ms of system time per clip and a
peak RSS of 884 MiB untuned; 52 ms and 1469 MiB tuned (1 GiB thresholds: 47 ms, 1528 MiB).
``$P4D_MALLOC_TUNE=0`` leaves malloc alone; so does a libc without ``mallopt`` (not glibc).

Precompute tunes dask worker processes only (and ``p4d bench precompute`` its stage-cost process,
to measure what the workers do): with reused memory, libx264 (``p4d.video.write_synthetic_video``)
no longer encodes bit-identically run to run (it reads memory it did not initialise, which fresh
mmap pages used to zero), so a process that writes test videos must not be tuned. PyAV decoding
stays bit-identical under the tuning (checked on the 720p bench videos).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import threading

log = logging.getLogger(__name__)

ENV = "P4D_MALLOC_TUNE"
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc <malloc.h>
THRESHOLD = 256 << 20

_STATE: list[bool] = []
_LOCK = threading.Lock()


def tune_malloc() -> bool:
    """Raise glibc's mmap and trim thresholds for this process (once); whether they were set."""
    with _LOCK:
        if not _STATE:
            _STATE.append(_set_thresholds() if os.environ.get(ENV, "1") != "0" else False)
            log.info("malloc thresholds %s", "raised to 256 MiB" if _STATE[0] else "left alone")
        return _STATE[0]


def _set_thresholds() -> bool:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, THRESHOLD))
