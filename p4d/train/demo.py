"""The README demo's training stage: conversations about the demo videos, then a few dozen steps of
the tiny student on the demo cache, printing the loss terms.

The questions have answers known from the files themselves: the video's duration (probed) and
where a boxed region (``<obj_1>``, drawn as a SoM mark on frame 0) lies in the frame.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v")


def make_demo_conversations(video_dir: str | Path, out_jsonl: str | Path) -> Path:
    """Write two LLaVA-style records per video of ``video_dir`` (a duration MCQ and a region
    question) to ``out_jsonl``, with paths relative to its folder when possible; return the path."""
    from p4d.errors import VideoDecodeError
    from p4d.video import probe

    video_dir, out_jsonl = Path(video_dir), Path(out_jsonl)
    out_jsonl.parent.mkdir(parents=True, exist_ok=True)
    records = []
    for k, path in enumerate(sorted(p for p in video_dir.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)):
        try:
            info = probe(str(path))
        except VideoDecodeError as exc:
            log.warning("demo conversations: skipping %s (%s)", path, exc)
            continue
        try:
            rel = str(path.resolve().relative_to(out_jsonl.parent.resolve()))
        except ValueError:
            rel = str(path.resolve())
        short, long_ = sorted((round(info.duration), round(info.duration) * 3 + 5))
        records.append({
            "id": f"{path.stem}-duration", "video": rel,
            "conversations": [
                {"from": "human", "value": f"<video>\nHow long is this video?\nA. about {short} s\nB. about {long_} s"},
                {"from": "gpt", "value": "A"}]})
        upper = k % 2 == 0  # alternate, so both answers occur
        y0, y1 = (0.05, 0.4) if upper else (0.6, 0.95)
        box = [round(0.3 * info.width), round(y0 * info.height), round(0.7 * info.width), round(y1 * info.height)]
        records.append({
            "id": f"{path.stem}-region", "video": rel, "regions": [{"label": "obj_1", "box": box}],
            "conversations": [
                {"from": "human", "value": "<video>\nIs <obj_1> in the upper or the lower half of the first frame?"
                                           "\nA. upper\nB. lower"},
                {"from": "gpt", "value": "A" if upper else "B"}]})
    if not records:
        raise FileNotFoundError(f"{video_dir}: no videos to make demo conversations from")
    out_jsonl.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    return out_jsonl


#: the demo's settings beyond the defaults: the tiny student learns in 30 steps at these rates
DEMO_LR = "2e-3"


def demo_train_args(conversations: str | Path, store: str | Path, out: str | Path, *, steps: int = 30,
                    batch_size: int = 2, progress: bool = False) -> list[str]:
    """The ``p4d train`` arguments of the demo's training (a fresh run): every setting it changes."""
    return ["--data", str(conversations), "--cache", str(store), "--out", str(out), "--student", "tiny",
            "--steps", str(steps), "--batch-size", str(batch_size), "--optim.lr-llm", DEMO_LR,
            "--optim.lr-projector", DEMO_LR, "--optim.lr-d4dp", DEMO_LR, "--optim.warmup-steps", "2",
            "--checkpoint.every", "10", "--log.tensorboard", "false", "--log.progress", str(progress).lower()]


def data_summary(report: dict) -> str:
    """The trainer's data report (``data_report.json``'s dict) as its one-line summary, e.g.
    ``6 records, 12 samples: 12 video; 6 record(s) without 'clip' trained 12 clip(s)``."""
    from collections import Counter

    from p4d.train.data import DataReport

    return DataReport(records=report["records"], kinds=Counter(report["kinds"]), skipped=Counter(report["skipped"]),
                      degraded=Counter(report.get("degraded", {})), clips=Counter(report.get("clips", {}))).summary()


def run_demo_training(conversations: str | Path, store: str | Path, out: str | Path, *, steps: int = 30,
                      batch_size: int = 2, echo=print, progress: bool = False):
    """Train the tiny student for ``steps`` steps (CPU is fine) through ``p4d train`` itself, echoing
    the exact command first, then the first and last loss terms. A second call continues the run
    in ``out`` from its last checkpoint (``--resume``); a run already at ``steps`` is not retrained.
    Returns the trainer's result, or None when nothing was left to train."""
    import shlex

    from p4d.train.checkpoint import list_checkpoints, read_meta
    from p4d.train.cli import train_app
    from p4d.train.logs import read_log
    from p4d.train.runfolder import is_run_folder

    out = Path(out)
    if is_run_folder(out):
        saved = list_checkpoints(out)
        done = int(read_meta(saved[-1]).get("step", 0)) if saved else 0
        if done >= steps:
            echo(f"p4d train: {out} already trained {done} of {steps} steps; not retrained "
                 f"(train longer: p4d train --resume {out} --steps {steps * 2})")
            result = None
        else:
            args = ["--resume", str(out), "--steps", str(steps)]
            echo(f"p4d train {shlex.join(args)}    # continues {out} from step {done}")
            result = train_app()(args=args, prog_name="p4d train", standalone_mode=False)
    else:
        args = demo_train_args(conversations, store, out, steps=steps, batch_size=batch_size, progress=progress)
        echo(f"p4d train {shlex.join(args)}")
        result = train_app()(args=args, prog_name="p4d train", standalone_mode=False)
    records = read_log(out)
    terms = ("loss", "sft", "ld", "depth", "flow", "motion", "camray")
    for r in (records[0], records[-1]):
        echo(f"step {r['step']:3d}: " + "  ".join(f"{k} {r[k]:.4g}" for k in terms if r.get(k) is not None))
    if result is not None:
        echo(f"data: {data_summary(result.data)} ({out / 'data_report.json'}); "
             f"checkpoint {result.checkpoint}; export {result.export}")
    return result
