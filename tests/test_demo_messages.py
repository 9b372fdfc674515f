"""What `p4d demo` prints a new user: every command it shows is one the real CLI accepts, and the
trainer's data report reads as a sentence, not a Python dict."""

from pathlib import Path

from typer.testing import CliRunner

from p4d.cli import app
from p4d.demo import inspect_commands, next_commands
from p4d.train.demo import data_summary


def test_every_command_the_demo_prints_parses_with_the_real_cli():
    """`--help` after the arguments: click rejects an unknown flag or a missing argument before printing help."""
    runner = CliRunner()
    commands = inspect_commands(Path("demo/cache.zarr"), Path("demo"), 0) + next_commands(Path("demo"))
    assert [c[0] for c in commands] == ["inspect", "inspect", "view", "eval", "eval"]
    for args in commands:
        res = runner.invoke(app, [*args, "--help"])
        assert res.exit_code == 0, (args, res.output)
    assert runner.invoke(app, ["inspect", "demo/cache.zarr", "--outt", "x.png", "--help"]).exit_code != 0


def test_data_report_line_by_hand():
    """The demo's 6 records (3 videos x 2 questions, no "clip") over 6 done clips (2 per video): 12 samples."""
    report = {"records": 6, "kinds": {"video": 12}, "skipped": {}, "degraded": {},
              "clips": {"all_clip_records": 6, "all_clip_not_done": 0, "all_clip_samples": 12}}
    assert data_summary(report) == "6 records, 12 samples: 12 video; 6 record(s) without 'clip' trained 12 clip(s)"
    report = {"records": 3, "kinds": {"video": 1}, "skipped": {"missing_video": 2}}  # older reports: no clips
    assert data_summary(report) == "3 records, 1 samples: 1 video; skipped 2 missing_video"
