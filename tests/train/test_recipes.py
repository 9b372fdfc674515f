"""``--recipe release|paper``: pinned to the values of notes/release.md §5 (written literally here),
overridable by YAML and flags, printed; epochs and global batch turn into steps and accumulation."""

import pytest
import typer
import yaml
from typer.testing import CliRunner

from p4d.errors import ConfigError
from p4d.train.cli import CONTEXT, train_command
from p4d.train.config import resolve_config
from p4d.train.data import Sample
from p4d.train.recipes import RECIPES, describe_recipe, resolve_run_length

BASE = {"data": {"conversations": "c.jsonl", "cache": "s.zarr"}, "out": "run"}
TINY = {**BASE, "model": {"preset": "tiny"}}  # no recipe: the student is named


def test_release_recipe_is_the_release_script():
    cfg = resolve_config(overrides=BASE, recipe="release")
    # sft.sh: frozen vision tower + projector, LLM trained; lr 1e-5 cosine, warmup ratio 0.03, wd 0
    assert cfg.model.preset == "nvila-lite-8b"  # base NVILA-Lite-8B
    assert cfg.recipe.tune == "tune-llm" and cfg.recipe.strategy == "p4d" and cfg.recipe.loss == "ld+ed"
    assert (cfg.optim.lr_llm, cfg.optim.warmup_ratio, cfg.optim.warmup_steps, cfg.optim.weight_decay) == (
        1e-5, 0.03, 0, 0.0)
    assert cfg.optim.min_lr_ratio == 0.0  # cosine to 0
    # 10 epochs, global batch 1024, 16 frames, max length 16384, bf16, 16 loader workers
    assert (cfg.optim.epochs, cfg.optim.global_batch, cfg.expect.num_frames) == (10, 1024, 16)
    assert (cfg.data.max_length, cfg.data.num_workers, cfg.runtime.precision) == (16384, 16, "bf16-mixed")
    assert cfg.model.gradient_checkpointing
    # D_4DP and loss weights of §3-§4
    assert (cfg.model.d4dp, cfg.model.d4dp_time) == ("linear", "stride")
    assert (cfg.loss.ld_weight, cfg.loss.depth_weight, cfg.loss.flow_weight, cfg.loss.motion_weight,
            cfg.loss.camray_weight) == (0.01, 0.1, 0.001, 0.01, 1e-5)


def test_paper_recipe_differs_only_where_the_paper_does():
    release = resolve_config(overrides=BASE, recipe="release").to_dict()
    paper = resolve_config(overrides=BASE, recipe="paper").to_dict()
    diff = {(s, k): (release[s][k], paper[s][k]) for s in release if isinstance(release[s], dict)
            for k in release[s] if release[s][k] != paper[s][k]}
    assert diff == {("recipe", "tune"): ("tune-llm", "tune-p+llm"),  # Tab. 7's best
                    ("model", "d4dp"): ("linear", "mlp"), ("model", "d4dp_time"): ("stride", "mean"),
                    ("model", "d4dp_hidden"): (None, 2560)}


def test_yaml_and_flags_override_the_recipe(tmp_path):
    cfg_file = tmp_path / "r.yaml"
    cfg_file.write_text(yaml.safe_dump({"optim": {"lr_llm": 3e-5}}))
    cfg = resolve_config(config_file=cfg_file, overrides={**BASE, "optim": {"epochs": "2"}}, recipe="release")
    assert (cfg.optim.lr_llm, cfg.optim.epochs, cfg.optim.global_batch) == (3e-5, 2.0, 1024)
    with pytest.raises(ConfigError, match="--recipe 'vila'"):
        resolve_config(overrides=BASE, recipe="vila")


def test_recipe_is_printed_and_the_cli_takes_it(tmp_path):
    text = describe_recipe("release")
    for line in ("--recipe.tune tune-llm", "--optim.lr-llm 1e-05", "--optim.epochs 10", "--optim.global-batch 1024",
                 "--data.max-length 16384", "--loss.camray-weight 1e-05", "--model.d4dp linear"):
        assert line in text
    assert sum(len(v) for v in RECIPES["release"].values()) == len(text.splitlines()) - 1  # one line per setting
    app = typer.Typer()
    app.command("train", context_settings=CONTEXT)(train_command)
    app.command("noop")(lambda: None)
    result = CliRunner().invoke(app, ["train", "--recipe", "paper", "--data", str(tmp_path / "none.jsonl"),
                                      "--cache", str(tmp_path / "none.zarr"), "--out", str(tmp_path / "run")])
    assert "recipe paper: sets" in result.output and "--recipe.tune tune-p+llm" in result.output
    assert result.exception is not None  # no such data: it stops after printing


def _samples(n: int) -> list[Sample]:
    return [Sample(kind="video-sft", record_id=str(i), turns=(("q", "a"),), media=("v.mp4",), clip=0, shard=-1,
                   num_frames=16) for i in range(n)]


def test_epochs_and_global_batch_become_steps_and_accumulation():
    cfg = resolve_config(overrides={**TINY, "data": {**BASE["data"], "batch_size": 2},
                                    "optim": {"epochs": 3, "global_batch": 8}})
    # 2 processes x batch 2 = 4 per micro-step -> grad_accum 2; 21 samples -> 5 full micro-batches per epoch;
    # 3 epochs = 15 micro-batches -> ceil(15 / 2) = 8 optimizer steps
    assert resolve_run_length(cfg, _samples(21), world_size=2) == {"optim.grad_accum": 2, "optim.max_steps": 8}
    assert (cfg.optim.grad_accum, cfg.optim.max_steps) == (2, 8)
    bad = resolve_config(overrides={**TINY, "optim": {"global_batch": 6}, "data": {**BASE["data"], "batch_size": 4}})
    with pytest.raises(ConfigError, match="--optim.global-batch 6: not a multiple of --data.batch-size 4"):
        resolve_run_length(bad, _samples(8), world_size=1)
    plain = resolve_config(overrides=TINY)
    assert resolve_run_length(plain, _samples(8), world_size=1) == {}
