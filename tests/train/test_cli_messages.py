"""What a new user meets at `p4d train`: flags named as typed, no run folder left behind by a
refused run, an existing run protected, a finished run's resume explained, every setting listed,
Ctrl-C saving the last step, TensorBoard event files when asked for."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from p4d.cli import app
from p4d.errors import ConfigError
from p4d.train.config import TrainConfig

ROOT = Path(__file__).resolve().parents[2]
FAST = ["--student", "tiny", "--batch-size", "1", "--log.progress", "false", "--checkpoint.export", "false",
        "--recipe.loss", "ld+d"]


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def train_args(train_cache, conversations, out, *extra):
    return ["train", "--data", conversations, "--cache", train_cache.store, "--out", out, *FAST, *extra]


def leaf_settings() -> list[str]:
    """--SECTION.FIELD of every leaf of TrainConfig, enumerated here independently of p4d.train.settings."""
    flags = []
    for f in dataclasses.fields(TrainConfig):
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        if dataclasses.is_dataclass(default):
            flags += [f"--{f.name}.{g.name.replace('_', '-')}" for g in dataclasses.fields(default)]
        else:
            flags.append(f"--{f.name.replace('_', '-')}")
    return flags


def test_unknown_student_names_the_flag_typed_and_leaves_nothing(train_cache, conversations, tmp_path):
    out = tmp_path / "run"
    result = invoke(*train_args(train_cache, conversations, out, "--student", "tinyy"))
    assert isinstance(result.exception, ConfigError)
    text = str(result.exception)
    assert text.startswith("--student 'tinyy': unknown preset (known: tiny, nvila-lite-8b, nvila-lite-2b)")
    assert not out.exists()


def test_no_student_is_one_line_naming_student_init_from_and_tiny(train_cache, conversations, tmp_path):
    out = tmp_path / "run"
    args = [a for a in train_args(train_cache, conversations, out) if a not in ("--student", "tiny")]
    result = invoke(*args)
    assert isinstance(result.exception, ConfigError)
    text = str(result.exception)
    assert "\n" not in text and text.startswith("--student: no student given")
    assert "--model.init-from" in text and "--student tiny" in text and "nvila-lite-8b" in text
    assert not out.exists()


def test_existing_run_refused_without_overwrite_and_finished_resume_explained(train_cache, conversations, tmp_path):
    out = tmp_path / "run"
    first = invoke(*train_args(train_cache, conversations, out, "--steps", "1"))
    assert first.exit_code == 0, first.output
    assert (out / "checkpoints").is_dir()
    before = (out / "log.jsonl").read_text()

    again = invoke(*train_args(train_cache, conversations, out, "--steps", "1"))
    assert isinstance(again.exception, ConfigError)
    assert f"--out {out}: already holds a run" in str(again.exception) and "--overwrite" in str(again.exception)
    assert (out / "log.jsonl").read_text() == before                      # untouched

    finished = invoke("train", "--resume", out)
    assert isinstance(finished.exception, ConfigError)
    assert "already at step 1 of --steps 1" in str(finished.exception) and "pass a larger --steps" in str(finished.exception)

    replaced = invoke(*train_args(train_cache, conversations, out, "--steps", "1", "--overwrite"))
    assert replaced.exit_code == 0, replaced.output
    assert len((out / "log.jsonl").read_text().splitlines()) == 1          # the old log was cleared, not appended to


def test_print_config_lists_every_setting_with_its_default(tmp_path):
    result = invoke("train", "--print-config", "--steps", "7", "--optim.lr-llm", "3e-5")
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if "  # --" in line]   # YAML, one commented line per setting
    flags = [line.split("# ")[1].split(";")[0] for line in lines]
    assert flags == leaf_settings()
    by_flag = dict(zip(flags, lines))
    assert by_flag["--optim.max-steps"].split()[:2] == ["max_steps:", "7"] and "default 100 (changed)" in by_flag["--optim.max-steps"]
    assert "3.0e-05" in by_flag["--optim.lr-llm"] and "default 2e-05 (changed)" in by_flag["--optim.lr-llm"]
    assert "default 1e-05" not in by_flag["--optim.lr-projector"] and "(changed)" not in by_flag["--optim.lr-projector"]
    assert not any((tmp_path / p).exists() for p in ("config.yaml",))


def test_help_lists_section_field_settings_and_keeps_brackets():
    text = invoke("train", "--help").output
    for flag in leaf_settings():
        assert flag in text, flag
    assert "--optim.lr-llm 2e-05" in text
    regions = invoke("eval", "make-regions", "--help").output
    assert "{id: [regions]}" in regions                                   # Rich markup used to eat "[regions]"


def test_tensorboard_requested_without_the_package_names_the_extra(train_cache, conversations, tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tensorboard" else real(name, *a))
    result = invoke(*train_args(train_cache, conversations, tmp_path / "run", "--log.tensorboard", "true"))
    assert isinstance(result.exception, ConfigError)
    assert "pip install 'p4d[tensorboard]'" in str(result.exception)
    assert TrainConfig().log.tensorboard is False                      # off by default: no promise of files


def test_tensorboard_event_files_hold_the_logged_losses(train_cache, conversations, tmp_path):
    pytest.importorskip("tensorboard", reason="tensorboard is an optional extra: pip install 'p4d[tensorboard]'")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "run"
    result = invoke(*train_args(train_cache, conversations, out, "--steps", "2", "--log.tensorboard", "true"))
    assert result.exit_code == 0, result.output
    events = list((out / "tensorboard").glob("events.out.tfevents.*"))
    assert events
    acc = EventAccumulator(str(out / "tensorboard"))
    acc.Reload()
    logged = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    tag = "loss"
    assert tag in acc.Tags()["scalars"]
    values = [e.value for e in acc.Scalars(tag)]
    assert [e.step for e in acc.Scalars(tag)] == [r["step"] for r in logged]
    assert values == pytest.approx([r["loss"] for r in logged], rel=1e-6)


@pytest.mark.slow
def test_ctrl_c_saves_the_last_step_and_prints_the_resume_command(train_cache, conversations, tmp_path):
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "p4d.cli", *map(str, train_args(train_cache, conversations, out,
                                                                                    "--steps", "500"))],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and proc.poll() is None:
        if (out / "log.jsonl").exists() and len((out / "log.jsonl").read_text().splitlines()) >= 2:
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    logged = [json.loads(line)["step"] for line in (out / "log.jsonl").read_text().splitlines()]
    last = max(logged)
    assert f"stopped by Ctrl-C after step {last}; saved" in err and f"p4d train --resume {out}" in err, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    meta = json.loads((out / "checkpoints" / f"step-{last:06d}" / "meta.json").read_text())
    assert meta["step"] == last
    resumed = invoke("train", "--resume", out, "--steps", last + 1)
    assert resumed.exit_code == 0, resumed.output
    assert [json.loads(line)["step"] for line in (out / "log.jsonl").read_text().splitlines()][-1] == last + 1
