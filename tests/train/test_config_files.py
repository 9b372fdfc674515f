"""Issue 27: `p4d train --print-config` writes YAML that `--config` reads back, and configs/ holds the
release and paper recipes as files equal to `--recipe release|paper`."""

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from p4d.cli import app
from p4d.train.cli import resolve_unchecked
from p4d.train.config import TrainConfig, load_yaml, parse_overrides, resolve_config
from p4d.train.recipes import RECIPES, recipe_settings

CONFIGS = Path(__file__).parents[2] / "configs"


def print_config(*args: str) -> str:
    result = CliRunner().invoke(app, ["train", "--print-config", *args])
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result.stdout


def test_print_config_round_trips_through_config(tmp_path):
    flags = ["--recipe", "paper", "--steps", "7", "--optim.lr-llm", "3e-5", "--data.video-root", "a b/#c: d",
             "--optim.betas", "0.8,0.95", "--student", "tiny", "--checkpoint.export", "false"]
    text = print_config(*flags)
    written = tmp_path / "printed.yaml"
    written.write_text(text)
    tree = yaml.safe_load(text)
    assert tree["optim"]["lr_llm"] == 3e-5 and tree["optim"]["max_steps"] == 7 and tree["data"]["video_root"] == "a b/#c: d"
    assert tree["recipe"]["tune"] == "tune-p+llm" and tree["model"]["d4dp_hidden"] == 2560   # the recipe's
    assert tree["optim"]["betas"] == [0.8, 0.95] and tree["checkpoint"]["export"] is False
    # read back: the same settings, and printing them again gives the same text
    again = print_config("--config", str(written))
    assert again == text
    flag_cfg = resolve_unchecked(None, parse_overrides([f for f in flags if f not in ("--recipe", "paper")]), "paper")
    assert TrainConfig.from_dict(load_yaml(written)) == flag_cfg        # the file holds what the flags resolved to
    # every line says its flag and default; changed values are marked
    lines = {line.split(":")[0].strip(): line for line in text.splitlines() if "# --" in line}
    assert "# --optim.lr-llm; default 2e-05 (changed)" in lines["lr_llm"]
    assert "(changed)" not in lines["lr_vision"]


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_recipe_files_are_the_named_recipes(name, tmp_path):
    file = CONFIGS / f"{name}.yaml"
    assert load_yaml(file) == recipe_settings(name)
    assert print_config("--config", str(file)) == print_config("--recipe", name)
    cfg = resolve_config(config_file=file, overrides={"data": {"conversations": "d.jsonl", "cache": "c.zarr"},
                                                      "out": str(tmp_path / "run")})   # validates
    assert cfg.optim.global_batch == 1024 and cfg.recipe.tune == recipe_settings(name)["recipe"]["tune"]


def test_configs_folder_holds_exactly_the_recipes():
    assert sorted(p.stem for p in CONFIGS.glob("*.yaml")) == sorted(RECIPES)
