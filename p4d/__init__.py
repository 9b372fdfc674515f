"""p4d: Perceptual 4D Distillation (4D-RGPT, arXiv 2512.17012) at scale.

A frozen L4P teacher (arXiv 2502.13078) is run once by ``p4d precompute`` into a Zarr v3
cache (:mod:`p4d.cache_schema`); ``p4d train`` distils a video MLLM student from that cache
without loading the teacher. See DESIGN.md for the package layout.
"""

__version__ = "0.1.0"
