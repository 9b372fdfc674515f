"""The teacher's resolved runtime (device class + dtype) is part of what a store was made with.

A bf16 forward on a GPU and an fp32 forward on a CPU give different targets, so a store begun
with one is not silently continued with the other. What is compared is what the *workers*
resolved (``--device auto`` / ``--dtype auto`` are resolved inside each worker): the device
class (``cpu`` or ``cuda``, not the GPU index) and the dtype (``bf16``, ``fp16``, ``fp32``).

* The store records the runtimes its targets were computed with in the root attr
  ``teacher_runtime`` (a list of ``{"device", "dtype"}``); a store written before that attr
  existed is read from its per-shard ``runs/shard-{id}.json`` records.
* The driver learns one worker's runtime before any shard is submitted and refuses a run whose
  runtime the store does not hold (:func:`check_runtime`), then records it.
* Every shard task checks its own worker's runtime against the driver's before computing
  anything (:func:`check_shard_runtime`), so a cluster whose workers resolve differently
  writes nothing mixed either.
* ``--allow-mixed-precision`` lifts both checks; every runtime used is then recorded.
"""

from __future__ import annotations

from p4d.errors import CacheSchemaError

__all__ = ["RUNTIME_ATTR", "MixedRuntimeError", "runtime_of", "recorded_runtimes", "check_runtime",
           "check_shard_runtime", "record_runtimes"]

RUNTIME_ATTR = "teacher_runtime"
FLAG = "--allow-mixed-precision"


class MixedRuntimeError(CacheSchemaError):
    """A run (or one of its workers) resolved another teacher device class or dtype than the store holds."""


def runtime_of(record: dict) -> dict:
    """``{"device": cpu|cuda, "dtype": ...}`` of a placement / run record (``device`` may be ``cuda:3``)."""
    return {"device": str(record.get("device", "?")).split(":", 1)[0], "dtype": str(record.get("dtype", "?"))}


def _label(runtime: dict) -> str:
    return f"{runtime['dtype']} on {runtime['device']}"


def recorded_runtimes(store) -> list[dict]:
    """The runtimes ``store``'s targets were computed with: its ``teacher_runtime`` attr, else (a
    store from before that attr) the distinct ones of its ``runs/`` records; [] for a new store."""
    attr = store.attrs.get(RUNTIME_ATTR)
    if isinstance(attr, list) and attr:
        return [runtime_of(r) for r in attr if isinstance(r, dict)]
    out: list[dict] = []
    for run in store.shard_runs().values():
        rt = runtime_of(run)
        if rt not in out:
            out.append(rt)
    return out


def _differences(recorded: list[dict], resolved: dict) -> str:
    """The differing keys, against the recorded runtime closest to ``resolved``: ``dtype fp32 -> bf16``."""
    best = min(recorded, key=lambda r: sum(r[k] != resolved[k] for k in ("device", "dtype")))
    return ", ".join(f"{k} {best[k]} -> {resolved[k]}" for k in ("device", "dtype") if best[k] != resolved[k])


def check_runtime(url: str, recorded: list[dict], resolved: dict, *, allow_mixed: bool) -> None:
    """Refuse (one line naming the differing keys and the flag) a run resolving a runtime the store does not hold."""
    if not recorded or resolved in recorded or allow_mixed:
        return
    raise MixedRuntimeError(
        f"store {url} holds targets computed with the teacher in {' and '.join(map(_label, recorded))}; this run's "
        f"workers resolve {_label(resolved)} (teacher {_differences(recorded, resolved)}): rerun with the store's "
        f"--dtype/--device (or $P4D_DTYPE/$P4D_DEVICE), or pass {FLAG} to mix them")


def check_shard_runtime(url: str, shard: int, expected: dict | None, placement: dict, *, allow_mixed: bool) -> None:
    """In a shard task, before anything is computed: its worker must run the driver's runtime."""
    resolved = runtime_of(placement)
    if expected is None or allow_mixed or resolved == expected:
        return
    raise MixedRuntimeError(
        f"store {url}, shard {shard}: this worker resolves the teacher in {_label(resolved)}, the run's other "
        f"workers {_label(expected)} (teacher {_differences([expected], resolved)}); give every worker the same "
        f"--dtype/--device (or $P4D_DTYPE/$P4D_DEVICE), or pass {FLAG} to mix them")


def record_runtimes(store, runtimes: list[dict]) -> list[dict]:
    """Add ``runtimes`` to the store's ``teacher_runtime`` attr (written only when it changes); returns the new list."""
    current = store.attrs.get(RUNTIME_ATTR)
    merged = recorded_runtimes(store)  # a store from before the attr: what its runs/ records say
    for rt in map(runtime_of, runtimes):
        if rt not in merged:
            merged.append(rt)
    if merged != current:
        store.update_attrs({RUNTIME_ATTR: merged})
    return merged
