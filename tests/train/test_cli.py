"""``p4d train`` as the lead wires it (typer), ``python -m p4d.train``, and the demo stage."""

import json
import subprocess
import sys

import pytest
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
    assert lines[0].startswith("p4d train --data ") and "--optim.lr-llm 2e-3" in lines[0]
    assert lines[1].startswith("step   1: loss") and "sft" in lines[1] and lines[2].startswith("step   2")
    assert lines[3].startswith("data: 10 records, 10 samples: 10 video") and "{" not in lines[3]  # not a dict repr


@pytest.mark.slow
def test_demo_prints_the_command_it_runs_and_resumes(train_cache, conversations, tmp_path):
    """Issue 27: the printed `p4d train` line is what ran (its lr and batch are in the run's config.yaml),
    and a second call continues the run instead of training it again."""
    import shlex

    from p4d.train.config import parse_overrides

    run = tmp_path / "run"
    lines = []
    run_demo_training(conversations, train_cache.store, run, steps=1, echo=lines.append)
    printed = shlex.split(lines[0])
    assert printed[:2] == ["p4d", "train"]
    # the printed line, parsed by the trainer's own flag parser, matches what the run recorded
    flags = parse_overrides(printed[2:])
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert float(flags["optim"]["lr_llm"]) == saved["optim"]["lr_llm"] == 2e-3
    assert int(flags["data"]["batch_size"]) == saved["data"]["batch_size"] == 2
    assert int(flags["optim"]["max_steps"]) == saved["optim"]["max_steps"] == 1
    log_before = (run / "log.jsonl").read_text()
    assert len(log_before.splitlines()) == 1

    lines.clear()   # a second run with the same steps: nothing retrained
    assert run_demo_training(conversations, train_cache.store, run, steps=1, echo=lines.append) is None
    assert lines[0].startswith(f"p4d train: {run} already trained 1 of 1 steps; not retrained")
    assert (run / "log.jsonl").read_text() == log_before

    lines.clear()   # more steps: continues from step 1, step 1 kept as it was
    result = run_demo_training(conversations, train_cache.store, run, steps=2, echo=lines.append)
    assert lines[0] == f"p4d train --resume {run} --steps 2    # continues {run} from step 1"
    after = (run / "log.jsonl").read_text().splitlines()
    assert result.steps == 2 and len(after) == 2 and after[:1] == log_before.splitlines()
    assert yaml.safe_load((run / "config.yaml").read_text())["optim"]["lr_llm"] == 2e-3
