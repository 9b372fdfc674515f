"""Clip-level progress of ``p4d precompute``: workers report each clip as it is processed, the driver
shows clips done / total with a rate and an ETA, inside shards that take minutes.

* Worker side, :func:`report_clip`: one dask event per clip (``Worker.log_event(topic, [shard, clip, ok])``,
  a few bytes through the scheduler; never per frame) once the teacher has run on it (``ok``) or it failed.
  Outside a dask worker, or without a topic, it does nothing; it never fails the shard.
* Driver side, :class:`ClipProgress`: subscribed to the run's topic (``Client.subscribe_topic``,
  handlers run on the client's event-loop thread, hence the lock). Counts each clip once (a retried
  shard reports its clips again), and when a shard's task completes counts all its clips, so the
  count is exact even where events are lost or unavailable: then it moves per shard, as before.
  Clips of shards already complete when the run starts (a resume) count as done from the start.
* Display: a tqdm bar on a terminal; otherwise (stderr to a file) a log line at most every
  ``LINE_EVERY_S`` seconds, ``clips 37/120, 2.1 clip/s, ETA 56 s`` (:func:`progress_line`).

A clip counts when the teacher's targets for it are computed (or it failed); it reads ``done`` in the
store once its whole shard is written.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable, Iterable

log = logging.getLogger(__name__)

TOPIC_PREFIX = "p4d-clip-progress"
LINE_EVERY_S = 15.0  # non-tty: seconds between progress lines (at most one line per interval)


def progress_topic(client_id: str) -> str:
    """The event topic of one run: a cluster shared by several runs keeps their events apart."""
    return f"{TOPIC_PREFIX}-{client_id}"


def report_clip(topic: str | None, shard: int, clip: int, ok: bool) -> None:
    """In a dask worker: tell the driver subscribed to ``topic`` that ``clip`` of ``shard`` is processed
    (``ok``: its targets are computed; else it failed). A no-op without a topic or outside a worker."""
    if topic is None:
        return
    try:
        from distributed import get_worker

        worker = get_worker()
    except (ImportError, ValueError):  # not inside a dask task: no one to tell
        return
    try:
        worker.log_event(topic, [int(shard), int(clip), int(bool(ok))])
    except Exception as exc:  # noqa: BLE001 - progress is advisory: the shard's own result stays exact
        log.debug("progress event for clip %d not sent: %s", clip, exc)


def format_duration(seconds: float) -> str:
    """``56 s``, ``12 min 05 s``, ``3 h 07 min``: seconds rounded, then the two largest units."""
    s = int(round(seconds))
    if s < 100:
        return f"{s} s"
    if s < 100 * 60:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def progress_line(done: int, total: int, rate: float, failed: int = 0) -> str:
    """``clips 37/120, 2.1 clip/s, ETA 56 s``: ``rate`` in clips/s of this run; ETA = (total - done) / rate
    (``ETA ?`` before any clip of this run is processed). ``failed`` (of ``done``) is named when non-zero."""
    fail = f" ({failed} failed)" if failed else ""
    eta = format_duration((total - done) / rate) if rate > 0 else "?"
    return f"clips {done}/{total}{fail}, {rate:.1f} clip/s, ETA {eta}"


class ClipProgress:
    """Clips processed out of ``total`` (``initial`` of them complete before this run), fed by
    :meth:`on_event` (one per clip, from any thread) and :meth:`on_shard` (a shard's task completed).

    ``show``: ``"bar"`` (tqdm), ``"lines"`` (a log line at most every ``every_s``) or ``"none"``.
    ``clock`` is injectable for tests; rates are clips processed by this run over the time since it began.
    """

    def __init__(self, total: int, initial: int = 0, *, show: str = "bar", every_s: float = LINE_EVERY_S,
                 clock: Callable[[], float] = time.monotonic, emit: Callable[[str], None] | None = None):
        self.total, self.initial, self.count, self.failed = total, initial, initial, 0
        self.events = 0                      # events received (before de-duplication)
        self._clock, self._every_s, self._show = clock, every_s, show
        self._emit = emit or (lambda line: log.warning("%s", line))
        self._t0 = clock()
        self._last_line = self._t0
        self._seen: dict[int, dict[int, bool]] = {}  # shard in flight -> clip -> ok
        self._finished: set[int] = set()              # shards whose task completed (their later events ignored)
        self._lock = threading.Lock()
        self._bar = None
        if show == "bar":
            from tqdm import tqdm

            self._bar = tqdm(total=total, initial=initial, desc="clips", unit="clip")

    @property
    def rate(self) -> float:
        """Clips per second processed by this run so far."""
        elapsed = self._clock() - self._t0
        return (self.count - self.initial) / elapsed if elapsed > 0 else 0.0

    def line(self) -> str:
        return progress_line(self.count, self.total, self.rate, self.failed)

    def on_event(self, event) -> None:
        """A dask event ``(timestamp, [shard, clip, ok])`` from :func:`report_clip`."""
        _, (shard, clip, ok) = event
        with self._lock:
            self.events += 1
            if shard in self._finished or clip in self._seen.setdefault(shard, {}):
                return
            self._seen[shard][clip] = bool(ok)
            self._advance(1, 0 if ok else 1)

    def on_shard(self, shard: int, clips: Iterable[int], failed: int) -> None:
        """Shard ``shard``'s task completed with ``failed`` of its ``clips`` failed: every clip counts,
        those without an event now, and the failed count becomes the shard's own."""
        with self._lock:
            seen = self._seen.pop(shard, {})
            self._finished.add(shard)
            new = sum(1 for c in clips if c not in seen)
            self._advance(new, failed - sum(1 for ok in seen.values() if not ok))

    def _advance(self, n: int, failed: int) -> None:
        self.count += n
        self.failed += failed
        if self._bar is not None:
            self._bar.update(n)
            self._bar.set_postfix(failed=self.failed, refresh=False)
        elif self._show == "lines" and self._clock() - self._last_line >= self._every_s:
            self._last_line = self._clock()
            self._emit(self.line())

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def display_mode(progress: bool, stream=None) -> str:
    """``bar`` on a terminal, ``lines`` when stderr goes to a file or pipe, ``none`` without progress."""
    if not progress:
        return "none"
    stream = sys.stderr if stream is None else stream
    return "bar" if getattr(stream, "isatty", lambda: False)() else "lines"


def subscribe(client, topic: str, progress: ClipProgress) -> bool:
    """Route ``topic``'s events to ``progress``; False (the per-shard count alone) where the client cannot."""
    try:
        client.subscribe_topic(topic, progress.on_event)
    except Exception as exc:  # noqa: BLE001 - e.g. a distributed without events: the per-shard count remains
        log.info("no clip-level progress (%s: %s); counting per shard", type(exc).__name__, exc)
        return False
    return True


def unsubscribe(client, topic: str) -> None:
    try:
        client.unsubscribe_topic(topic)
    except Exception:  # noqa: BLE001 - never subscribed, or the client is closing
        pass
