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

lmms-eval (``r4d_bench``, ``vlm4d``, ``vstibench`` at 16 frames): no p4d extra ships an adapter.
``pip install --dry-run torch==2.13.0 lmms-eval`` (lmms-eval 0.7.3) keeps torch 2.13.0+cpu and adds no
CUDA wheels, but would add ~100 packages (wandb, openai, datasets, sentence-transformers, opencv,
yt-dlp, ...), torchvision 0.28.0 from PyPI (next to the CPU-index torch), and move PyAV from 18.1 down to
15.1, which p4d.video decodes with. To plug a p4d student in, in an environment of its own: write an
``lmms_eval.api.model.lmms`` subclass registered with ``@register_model("p4d")`` whose
``generate_until(requests)`` takes each request's video (``doc_to_visual``) and prompt, samples
frames with :func:`p4d.video.sample_clip` (timestamps included), and returns
``student.answer(frames, timestamps, prompt, options=[])`` — the prompt already holds the lettered
options, and the task's own ``process_results`` parses and scores the text.
"""
