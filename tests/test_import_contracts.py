"""The import rules of docs/design.md, enforced by import-linter and by a fresh interpreter."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_import_linter_contracts_hold():
    lint = Path(sys.executable).with_name("lint-imports")
    res = subprocess.run([str(lint), "--config", str(ROOT / "setup.cfg")], cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "0 broken" in res.stdout


@pytest.mark.parametrize("module", ["p4d.train", "p4d.eval", "p4d.inspect", "p4d.targets.dataset", "p4d.targets.adapter"])
def test_student_side_never_imports_teacher(module):
    code = f"import sys, {module}; bad = [m for m in sys.modules if m.startswith(('p4d.teacher', 'p4d.precompute'))]; print(bad); assert not bad"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_cache_schema_imports_no_torch():
    code = "import sys, p4d.cache_schema; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_every_design_subpackage_exists():
    for name in ["cache_schema", "video", "heads", "teacher", "precompute", "train", "inspect", "bench", "eval"]:
        init = ROOT / "p4d" / name / "__init__.py"
        assert init.is_file(), init
        assert '"""' in init.read_text(), f"{init} has no docstring"
