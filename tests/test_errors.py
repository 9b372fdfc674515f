"""p4d.errors: the shared check of a mapping's keys against a config dataclass; the CLI error wrapper."""

from dataclasses import dataclass

import pytest

from p4d import errors
from p4d.errors import ConfigError, check_fields


@dataclass
class _Two:
    a: int = 0
    b: int = 0


def test_check_fields_names_owner_unknown_and_known_keys():
    check_fields("Two", _Two, {"a": 1})  # a subset of the fields is fine
    with pytest.raises(ConfigError, match=r"^Two: unknown fields \['c', 'z'\]; expected some of \['a', 'b'\]$"):
        check_fields("Two", _Two, {"a": 1, "z": 2, "c": 3})
    with pytest.raises(ConfigError, match="^Two: expected a mapping, found list$"):
        check_fields("Two", _Two, [("a", 1)])


@pytest.mark.parametrize("raised, code, line", [
    (errors.ConfigError("--steps: expected an integer >= 1, found 0"), 1, "error: --steps: expected an integer >= 1, found 0"),
    (errors.Interrupted("stopped at step 3; resume with p4d train --resume runs/r"), 130,
     "stopped at step 3; resume with p4d train --resume runs/r"),
    (KeyboardInterrupt(), 130, "stopped by Ctrl-C"),
])
def test_run_cli_prints_one_line_and_exits_with_the_code(capsys, raised, code, line):
    def command():
        raise raised

    with pytest.raises(SystemExit) as stop:
        errors.run_cli(command, ctrl_c="stopped by Ctrl-C")
    err = capsys.readouterr().err
    assert stop.value.code == code and err == line + "\n"


def test_run_cli_lets_other_errors_through():
    with pytest.raises(ZeroDivisionError):  # a bug keeps its traceback
        errors.run_cli(lambda: 1 / 0, ctrl_c="")
