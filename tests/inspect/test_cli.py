"""The typer command function, mounted on a throwaway app the way p4d.cli mounts it."""

import pytest
import typer
from typer.testing import CliRunner

from p4d.errors import ClipNotAvailableError
from p4d.inspect.cli import inspect_command

pytestmark = pytest.mark.slow


def _app() -> typer.Typer:
    app = typer.Typer()
    app.command("inspect")(inspect_command)

    @app.command("noop")
    def noop() -> None:  # a second command, so "inspect" is a sub-command as in p4d.cli
        pass

    return app


def test_png_and_html_from_the_command_line(store_path, tmp_path):
    runner = CliRunner()
    png = tmp_path / "c.png"
    res = runner.invoke(_app(), ["inspect", str(store_path), "--clip", "2", "--frames", "0,15", "--out", str(png)])
    assert res.exit_code == 0, res.output
    assert f"wrote {png} (clips: 2)" in res.output and png.exists()
    page = tmp_path / "c.html"
    res = runner.invoke(_app(), ["inspect", str(store_path), "--out", str(page), "--per-clip", "2", "--no-progress"])
    assert res.exit_code == 0, res.output
    assert "clips: 1, 2, 3, 4" in res.output and "clip 0 not rendered: failed" in res.output


def test_errors_propagate_as_p4d_errors(store_path, tmp_path):
    res = CliRunner().invoke(_app(), ["inspect", str(store_path), "--clip", "0", "--out", str(tmp_path / "x.png")])
    assert res.exit_code != 0 and isinstance(res.exception, ClipNotAvailableError)
