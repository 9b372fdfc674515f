"""``p4d eval``: the typer sub-app (wired into ``p4d.cli`` with ``app.add_typer(eval_app, name="eval")``).

Examples::

    p4d eval run R4D-Bench/ --model runs/student/export          # the shipped folder, release protocol
    p4d eval bench.jsonl --model runs/student/export --frames 16 --out preds.jsonl
    p4d eval run R4D-Bench/ --model runs/student/export --device cuda --batch-size 16   # bf16 on the GPU
    p4d eval bench.jsonl --model runs/concat/export --cache bench_cache.zarr      # 4d-concat / 4d-pe students
    p4d eval bench.jsonl --baseline random                                        # no model needed
    p4d eval report preds.jsonl random.jsonl runs/ablations/
    p4d eval make-temporal demo/videos temporal.jsonl
    p4d eval make-regions my_vqa.jsonl my_boxes.json my_bench.jsonl
    p4d eval distill cache.zarr --model runs/p4d --clips 12-15 --steps all   # F̂_4D / P̂_m vs video-blind

``p4d eval BENCH ...`` is ``p4d eval run BENCH ...``: a first argument that is not a sub-command
name is taken as the benchmark. Re-running the same command continues a killed eval.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from typer.core import TyperGroup


class _RunByDefault(TyperGroup):
    """A group whose first argument, when it is not a sub-command, is BENCH of ``run``."""

    def parse_args(self, ctx, args):
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


eval_app = typer.Typer(
    cls=_RunByDefault, no_args_is_help=True,
    help="R4D-Bench-format evaluation: `p4d eval BENCH --model DIR` (or --baseline), `report`, `make-temporal`, `make-regions`; `distill STORE --model RUN` scores F̂_4D and P̂_m.",
)


def _default_out(bench: Path, model: Optional[Path], baseline: Optional[str]) -> Path:
    who = baseline if baseline else (model.resolve().name if model else "run")
    return Path(f"{bench.stem}.{who}.predictions.jsonl")


@eval_app.command("run")
def run_command(
    bench: Path = typer.Argument(..., help="The R4D-Bench folder as shipped (test.json, videos/, clipped/, images/), or a JSON/JSONL file of items (p4d.eval.items)."),
    model: Optional[Path] = typer.Option(None, "--model", help="An exported student folder (loaded by p4d.train.load_exported_student)."),
    frames: int = typer.Option(16, "--frames", help="N, frames sampled uniformly over each video (with their timestamps)."),
    cache: Optional[str] = typer.Option(None, "--cache", help="F_4D cache over the benchmark videos (`p4d precompute`); required by 4d-concat / 4d-pe students."),
    baseline: Optional[str] = typer.Option(None, "--baseline", help="random (exact expectation) or first-option; instead of --model."),
    out: Optional[Path] = typer.Option(None, "--out", help="Predictions JSONL (default: BENCH-stem.MODEL.predictions.jsonl); an existing one is continued."),
    attn: Optional[str] = typer.Option(None, "--attn", help="Attention implementation passed to the student loader (recorded in the predictions file)."),
    dtype: Optional[str] = typer.Option(None, "--dtype", help="auto (default: bfloat16 on CUDA, float32 on the CPU) | float32 | bfloat16 | float16: the student's inference dtype (recorded in the predictions file)."),
    device: str = typer.Option("auto", "--device", help="auto (CUDA when available) | cpu | cuda | cuda:INDEX: where the student runs."),
    batch_size: int = typer.Option(8, "--batch-size", help="Items the student answers together (left-padded batched greedy generation; a killed eval redoes at most one batch)."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
    protocol: str = typer.Option("release", "--protocol", help="release (R4D-Bench's released prompt, [SoM image, video] input, letter parser, unparsed -> seeded random letter) | p4d (p4d's earlier prompt and parser, unparsed scores 0)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the random letters given to unparsed answers (release protocol)."),
) -> None:
    """Evaluate a student (or a baseline) on BENCH; write per-item predictions and print the Tab. 3 table."""
    from p4d.eval.run import EvalConfig, run_eval
    from p4d.eval.table import format_table

    out = out or _default_out(bench, model, baseline)
    result = run_eval(EvalConfig(bench=bench, out=out, frames=frames, model_dir=model, baseline=baseline, cache=cache,
                                 attn=attn, dtype=None if dtype == "auto" else dtype, device=device,
                                 batch_size=batch_size, progress=progress, protocol=protocol, seed=seed))
    name = {"random": "Random", "first-option": "First option"}.get(baseline or "", model.name if model else "model")
    table = format_table([(name, result.summary)], extra=[("# Frames", [str(frames)])])
    out.with_suffix(".md").write_text(table + "\n", encoding="utf-8")
    for problem in result.problems:
        typer.echo(f"skipped {problem.id}: {problem.reason}", err=True)
    for problem in result.unreadable:
        typer.echo(f"unreadable, scored as unparsed {problem.id}: {problem.reason}", err=True)
    typer.echo(table)
    if protocol == "release" and baseline is None:
        typer.echo(f"unparsed: {result.unparsed} answers held no option letter and were scored with a random "
                   f"letter (seed {seed}); {len(result.unreadable)} of them had an unreadable video or SoM image")
    typer.echo(f"{result.predicted} items predicted now, {result.resumed} resumed, {len(result.problems)} skipped; "
               f"predictions: {result.predictions}; table: {out.with_suffix('.md')}")


@eval_app.command("report")
def report_command(
    runs: list[Path] = typer.Argument(..., help="Predictions files (or folders of them) written by `p4d eval`."),
    out: Optional[Path] = typer.Option(None, "--out", help="Also write the markdown report to this file."),
) -> None:
    """Collect runs into markdown tables shaped like the paper's Tabs. 4-7, keyed by each run's saved preset."""
    from p4d.eval.report import format_report, load_runs

    text = format_report(load_runs(runs))
    if out is not None:
        out.write_text(text, encoding="utf-8")
    typer.echo(text)


@eval_app.command("make-temporal")
def make_temporal_command(
    videos: Path = typer.Argument(..., help="A folder of videos (recursive) or a text file with one path per line."),
    out: Path = typer.Argument(..., help="Where to write the items (JSONL)."),
    num_options: int = typer.Option(4, "--num-options", help="Options per question (the true duration + distractors)."),
    numeric: bool = typer.Option(False, "--numeric", help="Open numeric questions scored by MRA instead of MCQ."),
    seed: int = typer.Option(0, "--seed", help="Seed of the distractor choice."),
) -> None:
    """Toy temporal benchmark: "How many seconds have passed in the input video?" from each container's duration."""
    from p4d.eval.temporal import make_temporal

    made = make_temporal(videos, out, num_options=num_options, numeric=numeric, seed=seed)
    for problem in made.skipped:
        typer.echo(f"skipped {problem.id}: {problem.reason}", err=True)
    typer.echo(f"wrote {len(made.items)} items to {made.path} ({len(made.skipped)} videos skipped)")


@eval_app.command("make-regions")
def make_regions_command(
    vqa: Path = typer.Argument(..., help="MCQ items (JSON/JSONL) whose questions refer to <obj_1>, <obj_2>, ..."),
    boxes: Path = typer.Argument(..., help="First-frame regions per item id: {id: [regions]} or records with id + regions."),
    out: Path = typer.Argument(..., help="Where to write the items (JSONL); OUT.html + OUT_som/ hold the SoM review sheet."),
    sheet: bool = typer.Option(True, "--sheet/--no-sheet", help="Write the HTML SoM sheet (decodes each first frame)."),
) -> None:
    """Turn MCQ items plus first-frame boxes/masks into region-prompted items, with an HTML SoM sheet."""
    from p4d.eval.regions import make_regions

    made = make_regions(vqa, boxes, out, sheet=sheet)
    for problem in made.skipped:
        typer.echo(f"skipped {problem.id}: {problem.reason}", err=True)
    sheet_note = f", review sheet {out.with_suffix('.html')}" if sheet else ""
    typer.echo(f"wrote {len(made.items)} items to {made.path} ({len(made.skipped)} left out){sheet_note}")


@eval_app.command("distill")
def distill_command(
    store: str = typer.Argument(..., help="The cache the student was trained from (local path or URL)."),
    model: str = typer.Option(..., "--model", help="A `p4d train` run folder (checkpoints/step-K) or one checkpoint folder; p4d-strategy students (they have D_4DP)."),
    clips: Optional[str] = typer.Option(None, "--clips", help="Clips to score, e.g. 12-15 or 3,7,9 (held-out ones); default all done clips."),
    baseline_clips: Optional[str] = typer.Option(None, "--baseline-clips", help="Clips whose per-element mean is the video-blind baseline (default: the done clips not scored, i.e. the training clips)."),
    steps: Optional[str] = typer.Option(None, "--steps", help="'all' (a curve over every saved checkpoint) or steps such as 100,200; default the latest."),
    out: Optional[Path] = typer.Option(None, "--out", help="JSON file of the rows (default: MODEL/distill-eval.json)."),
    device: Optional[str] = typer.Option(None, "--device", help="auto (CUDA when available) | cpu | cuda: where the student runs."),
    dtype: Optional[str] = typer.Option(None, "--dtype", help="auto | float32 | bfloat16 | float16: the student's inference dtype."),
    video_root: Optional[str] = typer.Option(None, "--video-root", help="Where to find source videos whose recorded path is missing."),
) -> None:
    """Score a student's F̂_4D and P̂_m against the cached targets over many clips, beside the video-blind baseline."""
    from p4d.eval.distill import DistillConfig, format_distill_table, run_distill, write_distill_json

    result = run_distill(DistillConfig(store=store, run=model, clips=clips, baseline_clips=baseline_clips, steps=steps,
                                       device=device, dtype=dtype, video_root=video_root))
    path = write_distill_json(result, out or Path(model) / "distill-eval.json")
    typer.echo(format_distill_table(result))
    typer.echo(f"rows: {path}")
