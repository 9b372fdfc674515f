"""An lmms-eval task definition for R4D-Bench (``r4d_bench``) that calls p4d's prompt and parsing.

Files (data; copy both into ``lmms_eval/tasks/r4d_bench/`` of your own lmms-eval checkout):
``r4d_bench.yaml`` and ``r4d_bench_utils.py``. See docs/eval.md, section "lmms-eval".
"""
