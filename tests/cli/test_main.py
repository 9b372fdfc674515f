"""The `p4d` entry point: Ctrl-C in any command is one p4d line and exit code 130, never a traceback."""

import pytest

import p4d.cli as cli
from p4d.errors import Interrupted


@pytest.mark.parametrize("raised,expected", [
    (KeyboardInterrupt(), "p4d: stopped by Ctrl-C; nothing already written is lost"),
    (Interrupted("p4d train: stopped by Ctrl-C after step 3; saved X. Continue with: p4d train --resume R"),
     "Continue with: p4d train --resume R"),
])
def test_ctrl_c_anywhere_is_one_line_and_exit_130(monkeypatch, capsys, raised, expected):
    def command():
        raise raised
    monkeypatch.setattr(cli, "app", command)
    with pytest.raises(SystemExit) as stop:
        cli.main()
    assert stop.value.code == 130
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and expected in err and "Traceback" not in err
