"""p4d.lazy_exports: packages resolve their public names from submodules on first use."""

import importlib

import pytest


@pytest.mark.parametrize("package", ["p4d.teacher", "p4d.train", "p4d.inspect"])
def test_every_listed_name_resolves_and_others_raise(package):
    pkg = importlib.import_module(package)
    assert pkg.__all__ == sorted(pkg.__all__) and len(pkg.__all__) >= 5
    for name in pkg.__all__:
        getattr(pkg, name)  # imports its submodule; raises if the mapping names the wrong one
    with pytest.raises(AttributeError, match=f"module '{package}' has no attribute 'no_such_name'"):
        pkg.no_such_name


def test_lazy_names_are_the_submodules_objects():
    import p4d.inspect
    import p4d.teacher
    from p4d.inspect.run import inspect_store
    from p4d.teacher.model import build_teacher
    from p4d.teacher.presets import get_preset

    assert p4d.teacher.build_teacher is build_teacher and p4d.teacher.get_preset is get_preset
    assert p4d.inspect.inspect_store is inspect_store
