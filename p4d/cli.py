"""The ``p4d`` command line: one typer app, one sub-command per job (see docs/design.md).

Heavy modules (torch, dask, av, transformers) are imported inside the commands, so
``p4d --help`` is instant.

Examples::

    p4d demo --out demo                       # synthetic videos -> cache -> trained student -> pictures
    p4d cache init videos/ cache.zarr --teacher tiny
    p4d cache summary cache.zarr
    p4d cache verify cache.zarr
    p4d teacher info --preset l4p
    p4d doctor cache.zarr                      # versions, devices, extras, chromium, dask, the store's schema
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from p4d.errors import ConfigError, run_cli
from p4d.eval.cli import eval_app
from p4d.inspect.cli import inspect_command, view_command
from p4d.train.cli import CONTEXT as TRAIN_CONTEXT, HELP as TRAIN_HELP, train_command, train_epilog

app = typer.Typer(
    name="p4d",
    help="Perceptual 4D Distillation: cache a frozen L4P teacher's 4D targets, train students from the cache.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # help texts are plain: `[regions]`, `{id: ...}` print as written
)
cache_app = typer.Typer(help="Create, summarise, verify and repair cache stores.", no_args_is_help=True)
teacher_app = typer.Typer(help="The L4P teacher: presets, parameters, shapes.", no_args_is_help=True)
app.add_typer(cache_app, name="cache")
app.add_typer(teacher_app, name="teacher")
app.add_typer(eval_app, name="eval")
app.command("inspect")(inspect_command)
app.command("view")(view_command)
app.command("train", context_settings=TRAIN_CONTEXT, help=TRAIN_HELP, epilog=train_epilog())(train_command)


def _not_built(command: str, issue: int, what: str) -> None:
    typer.echo(f"p4d {command}: not built yet; issue #{issue} adds it ({what}).", err=True)
    raise typer.Exit(code=2)


# Parameters shared by `p4d cache init` (plan only) and `p4d precompute` (plan + run).
VideosArg = Annotated[str, typer.Argument(help="A directory of videos (recursive), a .txt list of paths, or the trainer's conversation .json/.jsonl.")]
StoreArg = Annotated[str, typer.Argument(help="The Zarr v3 cache: a local path or an fsspec URL.")]
TeacherOpt = Annotated[str, typer.Option(help="Teacher preset: l4p (the published architecture), tiny (same code, small; weights trained on synthetic scenes, shipped) or tiny-random (tests, smoke runs).")]
NumFramesOpt = Annotated[int, typer.Option(help="N, frames per clip (the l4p teacher takes exactly 16).")]
PolicyOpt = Annotated[str, typer.Option(help="Sampling policy: uniform (one clip over the whole video) or stride (back-to-back clips of N frames, --frame-stride apart).")]
FrameStrideOpt = Annotated[int, typer.Option(help="With --policy stride: source frames between sampled frames.")]
ModalitiesOpt = Annotated[str, typer.Option(help="Comma-separated maps to cache.")]
MapCodecOpt = Annotated[Optional[str], typer.Option(help="How depth/flow/motion/camray are stored: quant16 (default for a new store: int16 codes, max error 0.25 % relative depth, 1/16 px flow, 1/32 logit motion, 1e-4 camray; a clip that misses a bound is stored as float16) | float16 (the layout before map codecs). Default on resume: the store's own. See docs/cache.md.")]
CodecOpt = Annotated[Optional[str], typer.Option(help="Latent codec (default: dpcm-channel, ~0.13 of raw; `exact` = bfloat16, the release-exact choice; see `p4d cache codecs`).")]
ClipsPerShardOpt = Annotated[int, typer.Option(help="S, clips per shard: the unit of work and of writing.")]
TeacherInputOpt = Annotated[str, typer.Option(help="How the teacher's input is made: release (the 4D-RGPT release: frames squashed to the student's S x S by Pillow bicubic, then torch bilinear antialiased to the teacher size, [0, 1], L4P normalisation) or direct (decoded straight to the teacher size, Pillow bilinear).")]
StudentSizeOpt = Annotated[int, typer.Option(help="S, the student's input size the release transform goes through (NVILA-Lite: 448).")]


def _modalities(text: str) -> tuple[str, ...]:
    return tuple(m.strip() for m in text.split(",") if m.strip())


def _int_list(text: str, flag: str) -> tuple[int, ...]:
    try:
        return tuple(int(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise ConfigError(f"{flag} {text!r}: expected comma-separated integers, e.g. 14,21,28,36") from None


def _range(text: str) -> tuple[int, int]:
    start, sep, end = text.partition(":")
    try:
        return int(start), int(end)
    except ValueError:
        raise ConfigError(f"--shards {text!r}: expected START:END, e.g. 0:64") from None


# --- cache -----------------------------------------------------------------------------


@cache_app.command("init")
def cache_init(
    videos: VideosArg,
    store: StoreArg,
    teacher: TeacherOpt = "l4p",
    num_frames: NumFramesOpt = 16,
    policy: PolicyOpt = "uniform",
    frame_stride: FrameStrideOpt = 1,
    modalities: ModalitiesOpt = "depth,flow,motion,camray",
    codec: CodecOpt = None,
    map_codec: MapCodecOpt = None,
    clips_per_shard: ClipsPerShardOpt = 16,
    teacher_input: TeacherInputOpt = "release",
    student_size: StudentSizeOpt = 448,
    overwrite: bool = typer.Option(False, help="Replace an existing store at STORE."),
) -> None:
    """Plan a cache: probe every video, plan its clips and create an empty store (all clips pending)."""
    from p4d.precompute.plan import plan_cache

    store_obj = plan_cache(
        videos, store, teacher=teacher, num_frames=num_frames, policy=policy, frame_stride=frame_stride,
        modalities=_modalities(modalities), codec=codec, map_codec=map_codec, clips_per_shard=clips_per_shard, overwrite=overwrite,
        progress=True, teacher_input=teacher_input, student_size=student_size,
    )
    typer.echo(f"created {store}: {store_obj.num_clips} clips in {store_obj.num_shards} shards")


@cache_app.command("summary")
def cache_summary(store: str = typer.Argument(..., help="Path or fsspec URL of a cache store.")) -> None:
    """Print shapes, dtypes, clip counts by status, failure reasons and bytes on disk vs raw."""
    from p4d.cache_schema import format_summary, open_store

    typer.echo(format_summary(open_store(store)))


@cache_app.command("verify")
def cache_verify(store: str = typer.Argument(..., help="Path or fsspec URL of a cache store.")) -> None:
    """Check the creation marker, every array against the contract, clips/video against videos.json, and
    every done clip's chunks (present, checksums, decodable, finite); exit 1 on problems (then see `p4d cache repair`)."""
    from p4d.cache_schema import open_store, verify

    report = verify(open_store(store, check=False))
    for line in report.problems:
        typer.echo(f"problem: {line}")
    typer.echo(report.headline())
    if report.problems:
        if report.damaged_shards or not report.video_table_ok:
            from p4d.cache_schema.repair import precompute_command

            typer.echo(f"repair: `p4d cache repair {store}`, then recompute with:\n  "
                       f"{precompute_command(open_store(store, check=False))}")
        raise typer.Exit(code=1)


@cache_app.command("repair")
def cache_repair(store: str = typer.Argument(..., help="Path or fsspec URL of a cache store.")) -> None:
    """Verify, rewrite clips/video from videos.json if they disagree, and turn every damaged shard pending
    so the next `p4d precompute` (same arguments) recomputes it. Not while a precompute writes to STORE."""
    from p4d.cache_schema import open_store, repair

    typer.echo(repair(open_store(store, mode="r+", check=False)).headline())


@cache_app.command("codecs")
def cache_codecs() -> None:
    """List the latent codecs and the map codecs a store can use."""
    from p4d.cache_schema import DEFAULT_LATENT_CODEC, LATENT_CODECS
    from p4d.cache_schema.codecs import LATENT_CODEC_ALIASES

    for name, codec in LATENT_CODECS.items():
        mark = " (default)" if name == DEFAULT_LATENT_CODEC else ""
        typer.echo(f"{name:16s}{mark:10s} {codec.description}")
    for alias, name in LATENT_CODEC_ALIASES.items():
        typer.echo(f"{alias:16s}{'':10s} = {name}: release-exact, the precision the public release trains in "
                   "(no quantisation step; the self-check has nothing to fall back to)")
    from p4d.cache_schema.map_codecs import DEFAULT_MAP_CODEC, MAP_QUANT

    typer.echo("\nmap codecs (--map-codec):")
    typer.echo(f"{'quant16':16s}{' (default)' if DEFAULT_MAP_CODEC == 'quant16' else '':10s} int16 codes, per clip "
               "(step, offset); each clip checked, float16 where it misses: "
               + ", ".join(f"{m} {r.describe()}" for m, r in MAP_QUANT.items()))
    typer.echo(f"{'float16':16s}{'':10s} float16 maps (the layout of stores made before map codecs)")


# --- teacher ---------------------------------------------------------------------------


@teacher_app.command("info")
def teacher_info(preset: str = typer.Option("l4p", help="Teacher preset: l4p (the published architecture), tiny or tiny-random.")) -> None:
    """Print parameter counts (encoder and each head), FLOPs per clip and every output shape."""
    from p4d.teacher.info import format_info

    typer.echo(format_info(preset))


@teacher_app.command("list")
def teacher_list() -> None:
    """List the teacher presets: architecture, where the weights come from and their licence."""
    from p4d.teacher.presets import PRESETS

    for name, preset in PRESETS.items():
        typer.echo(f"{name:8s} {preset.describe()}")
        typer.echo(f"{'':8s} weights and licence: {preset.weights}")


# --- the jobs --------------------------------------------------------------------------


@app.command()
def precompute(
    videos: VideosArg,
    store: StoreArg,
    teacher: TeacherOpt = "l4p",
    teacher_weights: Optional[str] = typer.Option(None, help="Local teacher checkpoint (.ckpt or .safetensors); required for l4p unless --random-weights."),
    random_weights: bool = typer.Option(False, "--random-weights", help="Run the teacher with seeded RANDOM weights (--seed): smoke tests and benchmarks; the store, summary and pictures say RANDOM TEACHER. tiny runs its shipped weights (trained on synthetic scenes) and tiny-random its seeded random init without it."),
    taps: Optional[str] = typer.Option(None, help="Comma-separated encoder layers stored as F_4D and tapped by the heads (default: the preset's, 14,21,28,36 for l4p)."),
    shards: Optional[str] = typer.Option(None, help="Shard range START:END (e.g. 0:64), end excluded, to split one store between several processes."),
    num_frames: NumFramesOpt = 16,
    policy: PolicyOpt = "uniform",
    frame_stride: FrameStrideOpt = 1,
    modalities: ModalitiesOpt = "depth,flow,motion,camray",
    codec: CodecOpt = None,
    map_codec: MapCodecOpt = None,
    min_cosine: Optional[str] = typer.Option(None, metavar="MEAN[,WORST]", help="Thresholds of the latent codec's self-check (default 0.999,0.995): a clip whose decoded F_4D has a mean (worst) token cosine to the teacher's below MEAN (WORST) is re-encoded with each channel's 8 outlier tokens kept exactly and the rest at a finer step, then stored as bfloat16. Stricter values cost space (see `p4d cache summary`)."),
    min_channel_r2: Optional[str] = typer.Option(None, metavar="MEAN[,WORST]", help="Channel-balanced thresholds of the same self-check (default 0.99,0.95): per tap, the mean (worst) over channels of each channel's R^2 (its error relative to its own spread in the clip) must reach MEAN (WORST), else the same fallbacks. The token cosine alone cannot see small channels destroyed."),
    clips_per_shard: ClipsPerShardOpt = 16,
    teacher_input: TeacherInputOpt = "release",
    student_size: StudentSizeOpt = 448,
    batch_size: int = typer.Option(2, help="Clips per teacher forward."),
    dtype: str = typer.Option("auto", help="bf16 | fp16 | fp32 | auto (bf16 autocast on CUDA, fp32 on CPU)."),
    device: str = typer.Option("auto", help="auto | cpu | cuda."),
    decoder: str = typer.Option("auto", help="Video decoder, chosen in each worker: auto (NVDEC on the worker's GPU when it has one and PyNvVideoCodec is installed, pip install 'p4d[gpu]'; else PyAV) | cpu (PyAV) | gpu (NVDEC; an error where it cannot run). Recorded per shard in STORE/runs/."),
    allow_mixed_precision: bool = typer.Option(False, "--allow-mixed-precision", help="Let a store computed with another teacher dtype or device class (cpu/cuda, as the workers resolve --dtype/--device) be continued with this run's; both are recorded (root attr teacher_runtime, runs/). Without it such a resume is refused."),
    scheduler: Optional[str] = typer.Option(None, help="Address of an existing dask scheduler (e.g. tcp://10.0.0.5:8786); default: a local cluster on 127.0.0.1."),
    workers: Optional[int] = typer.Option(None, help="Local cluster workers (default: one per GPU, else 1)."),
    threads_per_worker: int = typer.Option(2, help="Shards in flight per worker (decode/write of one overlaps the forward of another)."),
    retries: int = typer.Option(2, help="Times dask retries a shard whose task failed or whose worker died."),
    retry_failed: bool = typer.Option(False, "--retry-failed", help="Also redo shards holding failed clips."),
    force: bool = typer.Option(False, "--force", help="Redo every shard."),
    max_pixels: Optional[int] = typer.Option(None, help="Refuse (record as failed) videos whose declared frame size exceeds this many pixels."),
    seed: int = typer.Option(0, help="Seed of a randomly initialised teacher."),
    video_root: Optional[str] = typer.Option(None, help="Folder that relative video paths in a conversation file are relative to."),
) -> None:
    """Run the frozen teacher once over every video into a Zarr cache (dask; resumable; bad videos recorded, never fatal)."""
    from p4d.precompute.config import PrecomputeConfig
    from p4d.precompute.job import run_precompute

    cfg = PrecomputeConfig(
        videos=videos, store=store, teacher=teacher, weights=teacher_weights, random_weights=random_weights,
        num_frames=num_frames, policy=policy,
        taps=None if taps is None else _int_list(taps, "--taps"), shards=None if shards is None else _range(shards),
        frame_stride=frame_stride, modalities=_modalities(modalities),
        codec=codec, map_codec=map_codec, min_cosine=min_cosine, min_channel_r2=min_channel_r2, clips_per_shard=clips_per_shard, batch_size=batch_size, dtype=dtype,
        device=device, decoder=decoder, allow_mixed_precision=allow_mixed_precision,
        scheduler=scheduler, workers=workers, threads_per_worker=threads_per_worker, retries=retries,
        retry_failed=retry_failed, force=force, max_pixels=max_pixels, seed=seed, video_root=video_root,
        teacher_input=teacher_input, student_size=student_size,
    )
    report = run_precompute(cfg)
    typer.echo(report.headline())
    if report.interrupted:
        typer.echo(f"p4d precompute: stopped by Ctrl-C while {report.phase}; shards already written are kept. "
                   "Rerun the same command to resume.", err=True)
        raise typer.Exit(code=130)


@app.command()
def bench(
    name: str = typer.Argument("all", help="cache | loader | teacher | precompute | train | gpu-precompute | gpu-train | cost | fidelity | distill | all"),
    size: str = typer.Option("tiny", help="tiny (seconds, CPU) | small | paper (the real L4P shapes; GPU where there is one)."),
    out: Optional[Path] = typer.Option(None, help="Folder for bench.json (with machine info), report.md and PNG plots."),
    teacher_rate: Optional[float] = typer.Option(None, help="precompute only: replace the teacher by a stand-in "
                                                 "taking 1/R s per clip (paper-shaped outputs), R clips/s."),
    device: str = typer.Option("auto", help="gpu-precompute / gpu-train only: cuda (the l4p teacher in bf16 / the "
                                            "2B student under FSDP2 on one GPU), cpu (dry run with the tiny preset) or "
                                            "auto (cuda if there is one, else skipped)."),
    clips: int = typer.Option(1_000_000, help="cost only: clips in the training set."),
    epochs: int = typer.Option(10, help="cost only: epochs per run (the release: 10)."),
    runs: int = typer.Option(1, help="cost only: training runs (students) fed by one cache."),
    student: str = typer.Option("nvila-lite-8b", help="cost only: nvila-lite-2b | nvila-lite-8b."),
    gpus: int = typer.Option(8, help="cost only: GPUs the student is sharded over."),
    gpu_mem: float = typer.Option(80.0, help="cost only: GB of memory per GPU, to check teacher + student fit."),
    gpu_tflops: float = typer.Option(400.0, help="cost only: effective TFLOP/s per GPU (H100 bf16 at 40 %)."),
    gpu_hour_usd: float = typer.Option(2.5, help="cost only: price of a GPU-hour, for the money break-even."),
    tb_month_usd: float = typer.Option(23.0, help="cost only: price of a TB-month of storage."),
    store: Optional[str] = typer.Option(None, help="cost only: a local store to measure bytes per clip on "
                                                   "(default: synthetic paper-shape clips)."),
    steps: Optional[int] = typer.Option(None, help="fidelity: training steps K per codec row (default: 40 tiny, 80 small); distill: steps of each student and of the probe (default: 300 for (a), 1000 for (b)'s time-cue students)."),
) -> None:
    """Benchmarks that print ratios to a baseline measured side by side in the same run; `cost` prints
    GPU-hours online vs cached, TB stored, break-even runs and GPU memory for your case."""
    from p4d.bench.harness import format_table
    from p4d.bench.registry import run_benchmarks
    from p4d.bench.report import describe_machine, machine_info, write_report

    machine = machine_info()
    typer.echo(f"machine: {describe_machine(machine)}")
    costs = dict(clips=clips, epochs=epochs, runs=runs, student=student, gpus=gpus, gpu_mem=gpu_mem,
                 gpu_tflops=gpu_tflops, gpu_hour_usd=gpu_hour_usd, tb_month_usd=tb_month_usd, store=store, steps=steps)
    results = run_benchmarks(name, size, device=device, **costs,
                             **({} if teacher_rate is None else {"teacher_rate": teacher_rate}))
    for res in results:
        res.machine = machine
        typer.echo(format_table(res) + "\n")
    if out is not None:
        paths = write_report(results, out, machine)
        typer.echo("wrote " + ", ".join(str(p) for p in paths.values()))


@app.command()
def demo(
    out: Path = typer.Option(Path("demo"), help="Folder for the demo's videos and cache."),
    videos: int = typer.Option(3, help="How many synthetic videos to generate on first run."),
) -> None:
    """The whole pipeline on synthetic videos: write them (first run only), precompute a tiny-teacher cache,
    print its summary, train the tiny student 30 steps, write inspect views (clip.png, cache.html)."""
    from p4d.demo import run_demo

    run_demo(out, num_videos=videos)


@app.command()
def doctor(store: Optional[str] = typer.Argument(None, help="A cache store to report the schema of (optional).")) -> None:
    """The environment on one screen for a bug report: versions, devices, extras, chromium, dask, and a STORE's schema."""
    from p4d.doctor import doctor_report

    typer.echo(doctor_report(store))


def _refuse_memory_urls(args: list[str]) -> None:
    """Each p4d command is its own process, so a memory:// store never holds what another command wrote."""
    for arg in args:
        if arg.split("=", 1)[-1].startswith("memory://"):
            raise ConfigError(f"{arg}: a memory:// store lives inside one Python process and is gone when the "
                              "command exits; give a local path or a shared fsspec URL (s3://, gs://)")


def main() -> None:
    """Entry point: p4d errors print one clear line and exit 1, not a traceback."""
    import sys

    def command() -> None:
        _refuse_memory_urls(sys.argv[1:])
        app()

    run_cli(command, ctrl_c="p4d: stopped by Ctrl-C; nothing already written is lost (rerun the command to continue)")


if __name__ == "__main__":
    main()
