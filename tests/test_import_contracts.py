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


def _import_cycles(package: str) -> list[list[str]]:
    """The strongly connected groups (more than one module) of the import graph inside ``package``,
    imports inside functions included (grimp reads them too)."""
    import grimp

    graph = grimp.build_graph("p4d")
    modules = sorted(m for m in graph.modules if m == package or m.startswith(package + "."))
    edges = {m: sorted(i for i in graph.find_modules_directly_imported_by(m) if i in modules) for m in modules}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles = []

    def visit(m: str) -> None:  # Tarjan
        index[m] = low[m] = len(index)
        stack.append(m)
        for n in edges[m]:
            if n not in index:
                visit(n)
                low[m] = min(low[m], low[n])
            elif n in stack:
                low[m] = min(low[m], index[n])
        if low[m] == index[m]:
            group = []
            while not group or group[-1] != m:
                group.append(stack.pop())
            if len(group) > 1:
                cycles.append(sorted(group))

    for m in modules:
        if m not in index:
            visit(m)
    return cycles


def test_no_import_circle_in_train():
    """``sharding`` takes a built student, ``build`` builds (meta-device helpers in ``meta_device``):
    no module of p4d.train imports, directly or through others, a module that imports it back."""
    assert _import_cycles("p4d.train") == []


def test_the_cycle_finder_sees_a_circle(tmp_path, monkeypatch):
    pkg = tmp_path / "circ"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from circ import b\n")
    (pkg / "b.py").write_text("from circ import a\n")
    (pkg / "c.py").write_text("from circ import a\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import grimp

    graph = grimp.build_graph("circ")
    assert graph.direct_import_exists(importer="circ.a", imported="circ.b")
    monkeypatch.setattr(grimp, "build_graph", lambda _name: graph)
    assert _import_cycles("circ") == [["circ.a", "circ.b"]]
