"""Issue 27: a misspelt --teacher / --student preset is the first thing refused, before the
flags it would need (--teacher-weights, --data)."""

from typer.testing import CliRunner

from p4d.cli import app
from p4d.errors import ConfigError


def test_misspelt_teacher_is_refused_before_asking_for_weights(tmp_path):
    for command in (["precompute"], ["cache", "init"]):
        result = CliRunner().invoke(app, [*command, str(tmp_path), str(tmp_path / "c.zarr"), "--teacher", "tinny"])
        assert isinstance(result.exception, ConfigError), result.output
        assert str(result.exception) == "--teacher 'tinny': unknown preset (known: l4p, tiny, tiny-random)"
        assert not (tmp_path / "c.zarr").exists()


def test_misspelt_student_is_refused_before_asking_for_data():
    result = CliRunner().invoke(app, ["train", "--student", "tinny"])
    assert isinstance(result.exception, ConfigError), result.output
    assert str(result.exception) == "--student 'tinny': unknown preset (known: tiny, nvila-lite-8b, nvila-lite-2b)"
