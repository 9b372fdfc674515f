"""The `eval` typer sub-app: BENCH as the default command, report, make-temporal, make-regions."""

from __future__ import annotations

import json

import pytest
import typer
from typer.testing import CliRunner

from p4d.errors import ConfigError
from p4d.eval.cli import eval_app


@pytest.fixture
def cli():
    app = typer.Typer()
    app.add_typer(eval_app, name="eval")  # the same wiring as p4d.cli

    @app.command()
    def other() -> None:  # a second command keeps `eval` a sub-command
        pass

    runner = CliRunner()
    return lambda *args: runner.invoke(app, ["eval", *map(str, args)])


def test_bench_is_the_default_command_and_report_reads_the_runs(tmp_path, video, cli):
    videos = tmp_path / "videos"
    videos.mkdir()
    (videos / "v.mp4").symlink_to(video)
    bench = tmp_path / "t.jsonl"
    res = cli("make-temporal", videos, bench, "--num-options", "4")
    assert res.exit_code == 0, res.output
    assert "wrote 1 items" in res.output

    res = cli(bench, "--baseline", "random", "--out", tmp_path / "rand.jsonl", "--no-progress")
    assert res.exit_code == 0, res.output
    assert "| Random (strict) | 16 | 1 expectation | 25.0 | – | 25.0 |" in res.output
    assert (tmp_path / "rand.md").read_text().startswith("| Method | # Frames | Decided | Avg | Sta | Dyn |")
    res = cli("run", bench, "--baseline", "first-option", "--out", tmp_path / "first.jsonl", "--no-progress")
    assert res.exit_code == 0, res.output
    header = json.loads((tmp_path / "first.jsonl").read_text().splitlines()[0])
    assert header["baseline"] == "first-option" and header["frames"] == 16

    res = cli("report", tmp_path / "rand.jsonl", tmp_path / "first.jsonl", "--out", tmp_path / "report.md")
    assert res.exit_code == 0, res.output
    assert "| Random |" in res.output and "| First option |" in res.output
    assert "| SA | DP | TIME |" in res.output  # the extra category gets its own column
    assert (tmp_path / "report.md").read_text() in res.output


def test_make_regions_command(tmp_path, video, cli):
    (tmp_path / "vqa.json").write_text(json.dumps([{"id": "q", "video": str(video), "question": "Where is <obj_1>?",
                                                    "options": ["l", "r"], "answer": "A", "category": "VG"}]))
    (tmp_path / "boxes.json").write_text(json.dumps({"q": [{"label": "obj_1", "box": [10, 20, 50, 60]}]}))
    res = cli("make-regions", tmp_path / "vqa.json", tmp_path / "boxes.json", tmp_path / "b.jsonl")
    assert res.exit_code == 0, res.output
    assert "wrote 1 items" in res.output and (tmp_path / "b.html").is_file()


def test_errors_surface_as_p4d_errors(tmp_path, cli):
    res = cli(tmp_path / "missing.json", "--baseline", "random", "--out", tmp_path / "x.jsonl")
    assert isinstance(res.exception, ConfigError) and "no such file" in str(res.exception)
    res = cli(tmp_path / "missing.json", "--out", tmp_path / "x.jsonl")
    assert isinstance(res.exception, ConfigError) and "--model DIR or --baseline" in str(res.exception)


def test_limit_scores_the_first_items_and_a_larger_limit_continues(tmp_path, mcq, write_bench, cli):
    # first-option answers A: right on the first item only, so the score is 100 % of 1, then 50 % of 2
    bench = write_bench(tmp_path / "b.json", [mcq("q1", "SA", "A"), mcq("q2", "SA", "B"), mcq("q3", "SA", "C")])
    out = tmp_path / "first.jsonl"
    res = cli(bench, "--baseline", "first-option", "--out", out, "--no-progress", "--limit", "1")
    assert res.exit_code == 0, res.output
    assert "| First option (strict) | 16 | 1 parser | 100.0 |" in res.output
    assert "--limit 1: scored the first 1 of 3 items" in res.output
    res = cli(bench, "--baseline", "first-option", "--out", out, "--no-progress", "--limit", "2")
    assert res.exit_code == 0, res.output
    assert "| First option (strict) | 16 | 2 parser | 50.0 |" in res.output
    assert "1 items predicted now, 1 resumed" in res.output
    assert [json.loads(line)["id"] for line in out.read_text().splitlines()[1:]] == ["q1", "q2"]
    res = cli(bench, "--baseline", "first-option", "--out", out, "--limit", "0")
    assert isinstance(res.exception, ConfigError) and "--limit 0" in str(res.exception)
