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
    baseline: Optional[str] = typer.Option(None, "--baseline", help="random (exact expectation), first-option or most-frequent-letter (always the letter most answers have); instead of --model."),
    out: Optional[Path] = typer.Option(None, "--out", help="Predictions JSONL (default: BENCH-stem.MODEL.predictions.jsonl); an existing one is continued."),
    attn: Optional[str] = typer.Option(None, "--attn", help="Attention implementation passed to the student loader (recorded in the predictions file)."),
    dtype: Optional[str] = typer.Option(None, "--dtype", help="auto (default: bfloat16 on CUDA, float32 on the CPU) | float32 | bfloat16 | float16: the student's inference dtype (recorded in the predictions file)."),
    device: str = typer.Option("auto", "--device", help="auto (CUDA when available) | cpu | cuda | cuda:INDEX: where the student runs."),
    batch_size: int = typer.Option(8, "--batch-size", help="Items the student answers together (left-padded batched greedy generation; a killed eval redoes at most one batch)."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
    protocol: str = typer.Option("release", "--protocol", help="release (default: each benchmark as its official code runs it: R4D-Bench's released lmms-eval task, unparsed -> random letter; STI-Bench's scripts, unparsed -> 0) | p4d (p4d's earlier prompt and parser, unparsed scores 0)."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed of the random letters R4D-Bench gives unparsed answers (default: unseeded, as the release draws them; the letters drawn are in the predictions file)."),
    limit: Optional[int] = typer.Option(None, "--limit", help="Only the first N items of BENCH, in file order (a quick check; a later run with a larger N continues the same predictions file)."),
) -> None:
    """Evaluate a student (or a baseline) on BENCH; write per-item predictions and print the tables (strict and matched scores)."""
    from p4d.eval.revisions import known_old_revision
    from p4d.eval.run import EvalConfig, run_eval

    out = out or _default_out(bench, model, baseline)
    result = run_eval(EvalConfig(bench=bench, out=out, frames=frames, model_dir=model, baseline=baseline, cache=cache,
                                 attn=attn, dtype=None if dtype == "auto" else dtype, device=device,
                                 batch_size=batch_size, progress=progress, protocol=protocol, seed=seed,
                                 limit=limit))
    name = {"random": "Random", "first-option": "First option", "most-frequent-letter": "Most frequent letter"}.get(
        baseline or "", model.name if model else "model")
    text = results_text(result, name, frames)
    out.with_suffix(".md").write_text(text + "\n", encoding="utf-8")
    for problem in result.problems:
        typer.echo(f"skipped {problem.id}: {problem.reason}", err=True)
    for problem in result.unreadable:
        typer.echo(f"unreadable, scored as unparsed {problem.id}: {problem.reason}", err=True)
    for item in result.bench.items:
        if item.options and not item.answer:
            typer.echo(f"no target, scored 0 (as the release scores it) {item.id}: answer {item.answer_value!r} is "
                       f"none of the options", err=True)
    old = known_old_revision(bench, len(result.bench.items) + len(result.bench.problems))
    if old is not None:
        typer.echo(f"warning: {bench} holds {old.items} items, the superseded {old.benchmark} revision "
                   f"(corrected: {old.current}): {old.note}", err=True)
    typer.echo(text)
    if limit is not None:
        typer.echo(f"--limit {limit}: scored the first {len(result.bench.items)} of {result.total_items} items; "
                   f"the table is not "
                   f"the benchmark's score")
    if protocol == "release" and baseline is None and result.unparsed:
        fallback = (f"scored with a random letter ({'unseeded' if seed is None else f'seed {seed}'})"
                    if any(not i.official == "sti" for i in result.bench.items) else "scored 0")
        typer.echo(f"unparsed: {result.unparsed} answers held no option letter for the official parser and were "
                   f"{fallback} under the strict rule; {len(result.unreadable)} of them had an unreadable video "
                   f"or SoM image")
    typer.echo(f"{result.predicted} items predicted now, {result.resumed} resumed, {len(result.problems)} skipped; "
               f"predictions: {result.predictions}; table: {out.with_suffix('.md')}")


def results_text(result, name: str, frames: int) -> str:
    """The tables ``p4d eval`` prints: strict and matched rows (with the items each rule decided), a
    most-frequent-letter row, the items file's sha256; STI-Bench adds its official text report."""
    from p4d.eval.scoring import most_frequent_letter
    from p4d.eval.sti import format_sti_report, format_sti_table, summarize_tasks
    from p4d.eval.table import format_table

    items = result.bench.items
    letter = most_frequent_letter(items)
    decided = _decided(result.rules or {})
    sha = f"items file sha256: {result.bench_sha256}"
    if items and all(i.official == "sti" for i in items):
        scores = _item_scores(result)
        rows = [(f"{name} (strict)", summarize_tasks((i.task, s) for i, s, _ in scores)),
                (f"{name} (matched)", summarize_tasks((i.task, m) for i, _, m in scores))]
        counts = [decided, decided]
        if letter is not None:
            rows.append((f"Most frequent letter ({letter})", summarize_tasks((i.task, float(i.answer == letter)) for i in items)))
            counts.append("")
        table = format_sti_table(rows, extra=[("# Frames", [str(frames)] * len(rows)), ("Decided", counts)])
        scenes = [summarize_tasks((i.benchmark, s) for i, s, _ in scores), summarize_tasks((i.benchmark, m) for i, _, m in scores)]
        reports = "\n\n".join(format_sti_report(cols, f"{name}, {rule}", scene) for (_, cols), rule, scene in
                                zip(rows[:2], ("strict (official parser)", "matched (+ option values)"), scenes))
        return f"{table}\n\n{sha}\n\n{reports}"
    from p4d.eval.scoring import summarize

    rows = [(f"{name} (strict)", result.summary), (f"{name} (matched)", result.summary_matched)]
    counts = [decided, decided]
    if letter is not None:
        rows.append((f"Most frequent letter ({letter})",
                     summarize((i.category, i.split, float(not i.is_numeric and i.answer == letter)) for i in items)))
        counts.append("")
    table = format_table(rows, extra=[("# Frames", [str(frames)] * len(rows)), ("Decided", counts)])
    return f"{table}\n\n{sha}"


def _decided(rules: dict) -> str:
    """"412 parser · 3 value · 5 random": how many items each rule decided (nonzero only)."""
    return " · ".join(f"{n} {rule}" for rule, n in rules.items() if n) or "–"


def _item_scores(result):
    from p4d.eval.predictions import read_predictions

    _, records = read_predictions(result.predictions)
    return [(i, float(r["score"]), float(r.get("score_matched", r["score"]))) for i in result.bench.items
            if (r := records.get(i.id)) is not None]


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
