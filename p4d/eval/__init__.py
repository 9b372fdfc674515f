"""R4D-Bench-format evaluation: MCQ and numeric scoring, per-category and per-split accuracy,
ablation report tables (issue #9). Never imports p4d.teacher or p4d.precompute.

Modules:

- :mod:`~p4d.eval.items`: the item format (id, video, question, 2-26 options, answer letter or number,
  category, split, first-frame regions ``<obj_k>``), :func:`~p4d.eval.items.load_bench` (malformed
  items reported by id).
- :mod:`~p4d.eval.r4d`: R4D-Bench as shipped, read from its folder (test.json, clipped/videos, SoM PNGs).
- :mod:`~p4d.eval.sti`: STI-Bench as shipped (qa.parquet, video/), its official prompt, time window and report.
- :mod:`~p4d.eval.revisions`: known superseded benchmark revisions (VSTI-Bench's old labels), by item count.
- :mod:`~p4d.eval.prompt`: the one prompt builder (release and p4d styles), also used by the
  exported student and the lmms-eval task in ``p4d/eval/lmms_eval_task/``.
- :mod:`~p4d.eval.parse`: the chosen option / number out of free-form model text (p4d's rules, the
  release's letter parser with its random letter, STI-Bench's official parser, the matched rule).
- :mod:`~p4d.eval.scoring`: strict and matched scores, MRA, micro averages (Avg/Sta/Dyn + 9 categories), baselines.
- :mod:`~p4d.eval.table`: the paper's Tab. 3 layout in markdown.
- :mod:`~p4d.eval.predictions`: the resumable predictions JSONL.
- :mod:`~p4d.eval.run`: the :class:`~p4d.eval.run.VideoQAModel` protocol, student loading, the eval loop.
- :mod:`~p4d.eval.report`: Tabs. 4-7 from several runs; :mod:`~p4d.eval.temporal` and
  :mod:`~p4d.eval.regions`: ``make-temporal`` and ``make-regions``; :mod:`~p4d.eval.cli`: ``eval_app``.

lmms-eval: ``p4d/eval/lmms_eval_task/`` holds the release's ``r4d_bench`` task on p4d's prompt and
parser; :mod:`~p4d.eval.lmms_model` is a p4d student as an lmms-eval model (``--model p4d``, entry point
``lmms_eval.models``), written against lmms-eval's documented model API: ``pip install --dry-run
lmms-eval`` (0.7.3) would move torch 2.13.0 to 2.14.1 (with CUDA wheels) and PyAV 18.1 to 15.1 here, so
it is tested through a stand-in of that API, not inside lmms-eval.
"""
