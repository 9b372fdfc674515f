"""Issue 27: path messages a new user meets: `p4d eval --model RUN` (a run folder, not its export)
and `p4d train --model.init-from /nope` (no such folder, not "missing subfolder 'llm'")."""

from typer.testing import CliRunner

from p4d.cli import app
from p4d.errors import ConfigError, P4DError


def run_folder(path, *, export: bool):
    path.mkdir()
    (path / "config.yaml").write_text("out: run\n")
    (path / "log.jsonl").write_text("")
    (path / "checkpoints").mkdir()
    if export:
        (path / "export").mkdir()
    return path


def test_eval_model_run_folder_points_at_its_export(tmp_path):
    bench = tmp_path / "bench.jsonl"   # never read: the --model check comes first
    bench.write_text("")
    run = run_folder(tmp_path / "run", export=True)
    result = CliRunner().invoke(app, ["eval", str(bench), "--model", str(run), "--out", str(tmp_path / "p.jsonl")])
    assert isinstance(result.exception, ConfigError), result.output
    assert str(result.exception) == f"--model {run}: a `p4d train` run folder, not an export; pass --model {run}/export"

    unfinished = run_folder(tmp_path / "unfinished", export=False)
    result = CliRunner().invoke(app, ["eval", str(bench), "--model", str(unfinished)])
    assert f"its export {unfinished}/export is not written yet" in str(result.exception)
    assert f"`p4d train --resume {unfinished}`" in str(result.exception)

    result = CliRunner().invoke(app, ["eval", str(bench), "--model", str(tmp_path / "nope")])
    assert str(result.exception).startswith(f"--model {tmp_path / 'nope'}: no such folder")


def test_train_init_from_a_missing_folder_says_no_such_folder(train_cache, conversations, tmp_path):
    result = CliRunner().invoke(app, ["train", "--data", str(conversations), "--cache", train_cache.store,
                                      "--out", str(tmp_path / "run"), "--model.init-from", "/nope", "--steps", "1"])
    assert isinstance(result.exception, P4DError) and isinstance(result.exception, FileNotFoundError), result.output
    message = str(result.exception)
    assert message.startswith("--model.init-from /nope: no such folder; expected an NVILA-Lite directory")
    assert "missing subfolder" not in message
