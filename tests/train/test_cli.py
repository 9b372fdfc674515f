"""``p4d train`` as the lead wires it (typer), ``python -m p4d.train``, and the demo stage."""

import json
import subprocess
import sys

import typer
import yaml
from typer.testing import CliRunner

from p4d.errors import ConfigError
from p4d.train.cli import CONTEXT, train_command
from p4d.train.demo import make_demo_conversations, run_demo_training

app = typer.Typer()
app.command("train", context_settings=CONTEXT)(train_command)
app.command("noop")(lambda: None)  # two commands: `train` is a sub-command, as in p4d/cli.py


def test_short_and_dotted_flags(train_cache, conversations, tmp_path):
    out = tmp_path / "run"
    result = CliRunner().invoke(app, [
        "train", "--data", str(conversations), "--cache", train_cache.store, "--out", str(out), "--student", "tiny", "--steps", "2",
        "--loss", "ld-only", "--optim.lr-llm", "1e-3", "--log.progress", "false", "--checkpoint.export=false",
        "--data.batch-size", "1"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert "trained 2 steps" in result.output and "ld " in result.output
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["optim"]["lr_llm"] == 1e-3 and saved["recipe"]["loss"] == "ld-only" and saved["data"]["batch_size"] == 1
    assert len((out / "log.jsonl").read_text().splitlines()) == 2


def test_bad_flags_name_themselves(train_cache, conversations, tmp_path):
    base = ["train", "--data", str(conversations), "--cache", train_cache.store, "--out", str(tmp_path / "x"),
            "--student", "tiny"]
    result = CliRunner().invoke(app, [*base, "--optim.lr-lm", "1"])
    assert isinstance(result.exception, ConfigError) and "--optim.lr-lm" in str(result.exception)
    result = CliRunner().invoke(app, [*base, "--tune", "tune-nothing"])
    assert isinstance(result.exception, ConfigError) and "--recipe.tune" in str(result.exception)
    assert not (tmp_path / "x").exists()


def test_module_entry_point_for_torchrun():
    proc = subprocess.run([sys.executable, "-m", "p4d.train", "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "--strategy" in proc.stdout and "--resume" in proc.stdout


def test_demo_conversations_and_training(train_cache, tmp_path):
    data = make_demo_conversations(train_cache.videos, tmp_path / "demo.jsonl")
    records = [json.loads(line) for line in data.read_text().splitlines()]
    assert len(records) == 10                              # 5 decodable videos × 2 questions; bad.mp4 skipped
    regions = [r for r in records if r.get("regions")]
    assert {r["conversations"][1]["value"] for r in regions} == {"A", "B"}
    for r in regions:
        (x0, y0, x1, y1), height = r["regions"][0]["box"], 64
        answer = r["conversations"][1]["value"]
        assert answer == ("A" if y1 <= height / 2 else "B") and (y0 >= height / 2) == (answer == "B")
    lines = []
    result = run_demo_training(data, train_cache.store, tmp_path / "run", steps=2, echo=lines.append)
    assert result.steps == 2 and result.data["kinds"] == {"video": 10}
    assert lines[0].startswith("step   1: loss") and "sft" in lines[0] and lines[1].startswith("step   2")
