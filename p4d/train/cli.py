"""The ``p4d train`` command (typer) and ``python -m p4d.train`` (what torchrun starts).

Every setting of :class:`~p4d.train.config.TrainConfig` is a flag ``--SECTION.FIELD VALUE``
(e.g. ``--optim.lr-llm 1e-5``, ``--augment.hflip 0.5``, ``--checkpoint.every 500``); the common ones
below have short names. ``--resume DIR`` without ``--config`` continues with the checkpoint's own
config (flags still override, e.g. a larger ``--steps``). ``p4d train plot RUN [OUT.png]`` draws
the loss curves of a run (``RUN/loss.png``) from its ``log.jsonl``.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Optional

import typer

HELP = ("Train the student from conversations + a cache, never loading the teacher. "
        "`p4d train plot RUN [OUT.png]` draws a run's loss curves (RUN/loss.png) from RUN/log.jsonl.")
CONTEXT = {"allow_extra_args": True, "ignore_unknown_options": True}


def train_epilog() -> str:
    """Every --SECTION.FIELD setting with its default (for --help); imports only the config dataclasses."""
    from p4d.train.settings import help_epilog

    return help_epilog()


def train_command(
    ctx: typer.Context,
    data: Optional[str] = typer.Option(None, "--data", help="LLaVA-style conversation .json/.jsonl (video or image records)."),
    cache: Optional[str] = typer.Option(None, "--cache", help="The cache store written by `p4d precompute`."),
    out: Optional[str] = typer.Option(None, "--out", help="Run folder: config.yaml, log.jsonl, checkpoints/, export/."),
    config: Optional[Path] = typer.Option(None, "--config", help="YAML file with any settings (flags override it)."),
    recipe: Optional[str] = typer.Option(None, "--recipe", help="release (the public 4D-RGPT sft.sh: tune-llm, lr 1e-5, 10 epochs, global batch 1024, ...) | paper (the same with tune-p+llm and the MLP D_4DP); printed; YAML and flags override it."),
    resume: Optional[str] = typer.Option(None, "--resume", help="A checkpoint folder, or a run folder (its newest checkpoint)."),
    strategy: Optional[str] = typer.Option(None, "--strategy", help="Tab. 4: 4d-sft | 4d-concat | 4d-pe | p4d (default)."),
    loss: Optional[str] = typer.Option(None, "--loss", help="Tab. 5: ld-only | ld+d | ld+d+f | ld+d+f+m | ed-only | ld+ed (default)."),
    time_cue: Optional[str] = typer.Option(None, "--time-cue", help="Tab. 6: none | mark | prompt | tpe (default)."),
    tune: Optional[str] = typer.Option(None, "--tune", help="Tab. 7: tune-all | tune-v | tune-p | tune-llm | tune-llm-lora | tune-p+llm-lora | tune-p+llm (default)."),
    student: Optional[str] = typer.Option(None, "--student", help="Student preset: tiny | nvila-lite-2b | nvila-lite-8b."),
    steps: Optional[int] = typer.Option(None, "--steps", help="Optimizer steps (--optim.max-steps)."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Clips per process per micro-step."),
    workers: Optional[int] = typer.Option(None, "--workers", help="DataLoader workers per process (spawned)."),
    allow_missing_targets: bool = typer.Option(False, "--allow-missing-targets", help="Train records whose clip failed or is missing SFT-only instead of skipping them."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed of init, data order and augmentation."),
    device: Optional[str] = typer.Option(None, "--device", help="auto | cpu | cuda."),
    export_dtype: Optional[str] = typer.Option(None, "--export-dtype", help="bf16 (default) | fp32: the weights of OUT/export (--checkpoint.export-dtype; NVILA-Lite-8B ≈16 vs ≈32 GB); `p4d eval` loads either."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace the run already in --out (refused without it)."),
    print_config: bool = typer.Option(False, "--print-config", help="Print every setting as YAML (resolved value; flag, default and meaning as comments) that --config reads back, and exit without training."),
    probe_from: Optional[str] = typer.Option(None, "--probe-from", help="Probe mode: a 4d-sft or p4d run (its newest checkpoint) or one step-K folder; its student is loaded and frozen and only a fresh D_4DP trains on --loss (the control `p4d eval distill` scores beside a P4D student). No export."),
    allow_teacher_change: bool = typer.Option(False, "--allow-teacher-change", help="With --resume: continue on a cache of another teacher or schema than the checkpoint's (refused otherwise)."),
) -> None:
    """Train the student from conversations + a cache, never loading the teacher (extra settings: --SECTION.FIELD VALUE)."""
    from p4d.train.config import merge, parse_overrides, set_path

    if ctx.args[:1] == ["plot"]:  # `p4d train plot RUN [PNG]`: the loss curves of a run
        from p4d.train.plot import plot_run

        if len(ctx.args) not in (2, 3):
            raise typer.BadParameter("expected `p4d train plot RUN [OUT.png]`")
        typer.echo(f"wrote {plot_run(*ctx.args[1:])}")
        return None
    short = {"data.conversations": data, "data.cache": cache, "out": out, "resume": resume,
             "recipe.strategy": strategy, "recipe.loss": loss, "recipe.time_cue": time_cue, "recipe.tune": tune,
             "model.preset": student, "optim.max_steps": steps, "data.batch_size": batch_size,
             "data.num_workers": workers, "runtime.seed": seed, "runtime.device": device,
             "checkpoint.export_dtype": export_dtype,
             "data.allow_missing_targets": True if allow_missing_targets else None, "probe_from": probe_from,
             "allow_teacher_change": True if allow_teacher_change else None}
    overrides: dict = {}
    for key, value in short.items():
        if value is not None:
            set_path(overrides, key, value)
    overrides = merge(overrides, parse_overrides(ctx.args))
    if recipe is not None:
        from p4d.train.recipes import describe_recipe

        typer.echo(describe_recipe(recipe), err=print_config)  # --print-config: stdout is only the YAML
    if print_config:
        from p4d.train.settings import format_settings

        typer.echo(format_settings(resolve_unchecked(config, overrides, recipe)))
        return
    result = run_from_flags(config, overrides, recipe, overwrite=overwrite)
    typer.echo(summary_line(result))
    return result  # what a caller of train_app(...)(standalone_mode=False) gets (the demo)


def _resumed_config(resume: str) -> tuple[Path, Path | None, dict]:
    """(run folder to write into, its newest checkpoint or None, the run's saved config) for ``--resume``."""
    from p4d.train.checkpoint import find_resume, read_meta
    from p4d.train.config import drop_retired, load_yaml
    from p4d.train.trainer import CONFIG_FILE

    run_dir, found = find_resume(resume)
    saved = drop_retired(read_meta(found)["config"] if found is not None else load_yaml(run_dir / CONFIG_FILE))
    saved.pop("resume", None)
    saved["out"] = str(run_dir)  # the folder it resumes, even when copied from another run's folder
    return run_dir, found, saved


def resolve_unchecked(config_file: Path | None, overrides: dict, recipe: str | None = None):
    """What ``--print-config`` shows: recipe < YAML (or the resumed run's config) < flags, unvalidated."""
    from p4d.train.config import TrainConfig, load_yaml, merge
    from p4d.train.recipes import recipe_settings

    tree: dict = recipe_settings(recipe) if recipe else {}
    if config_file is None and overrides.get("resume"):
        tree = merge(tree, _resumed_config(overrides["resume"])[2])
    elif config_file is not None:
        tree = merge(tree, load_yaml(config_file))
    return TrainConfig.from_dict(merge(tree, overrides), source="flags")


def run_from_flags(config_file: Path | None, overrides: dict, recipe: str | None = None, *, overwrite: bool = False):
    """Resolve (recipe, YAML or the resumed run's config, then flags), validate, check the run
    folder (an existing run in --out, a finished --resume) and train."""
    from p4d.train.checkpoint import read_meta
    from p4d.train.config import TrainConfig, merge, resolve_config
    from p4d.train.runfolder import check_not_finished, check_out_folder
    from p4d.train.trainer import main

    run_dir = resume_from = None
    if overrides.get("resume"):
        run_dir, resume_from, saved = _resumed_config(overrides["resume"])
    if config_file is None and run_dir is not None:
        cfg = TrainConfig.from_dict(merge(saved, overrides), source="the checkpoint's config + flags").validate()
    else:
        cfg = resolve_config(config_file=config_file, overrides=overrides, recipe=recipe)
    if resume_from is not None:
        check_not_finished(resume_from, read_meta(resume_from), cfg.optim.max_steps)
    if run_dir is None or Path(cfg.out).resolve() != run_dir.resolve():
        check_out_folder(cfg.out, resume_from=resume_from, overwrite=overwrite)
    return main(cfg)


def summary_line(result) -> str:
    terms = ", ".join(f"{k} {result.last[k]:.4g}" for k in ("loss", "sft", "ld", "depth", "flow", "motion", "camray")
                      if isinstance(result.last.get(k), float))
    text = f"trained {result.steps} steps into {result.out}: {terms}"
    if result.export is not None:
        text += f"; exported to {result.export}"
    return text


def train_app() -> typer.Typer:
    """``p4d train`` alone as a typer app (``python -m p4d.train``, and the demo runs the command it prints)."""
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None)
    app.command(context_settings=CONTEXT, help=HELP, epilog=train_epilog())(train_command)
    return app


def main(argv: list[str] | None = None) -> None:
    """``python -m p4d.train ...`` (torchrun entry): the same flags as ``p4d train``."""
    from p4d.errors import run_cli

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = train_app()
    run_cli(lambda: app(args=sys.argv[1:] if argv is None else argv, prog_name="p4d train", standalone_mode=True),
            ctrl_c="p4d train: stopped by Ctrl-C before training started; nothing was written")
