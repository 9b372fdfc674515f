"""p4d: Perceptual 4D Distillation (4D-RGPT, arXiv 2512.17012) at scale.

A frozen L4P teacher (arXiv 2502.13078) is run once by ``p4d precompute`` into a Zarr v3
cache (:mod:`p4d.cache_schema`); ``p4d train`` distils a video MLLM student from that cache
without loading the teacher. See docs/design.md for the package layout.
"""

__version__ = "0.1.0"


def lazy_exports(package: str, exports: dict[str, str]):
    """``(__getattr__, __all__)`` for a package whose public names live in submodules that are
    imported only on first use (``exports``: name -> module path), so importing the package stays
    cheap (e.g. ``p4d --help`` or a planner that needs only ``p4d.teacher.presets``)."""
    import importlib

    def __getattr__(name: str):
        if name in exports:
            return getattr(importlib.import_module(exports[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__, sorted(exports)
