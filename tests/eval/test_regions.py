"""make-regions: MCQ items + first-frame boxes/masks -> valid items and an HTML SoM sheet."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

from p4d.eval.items import load_bench
from p4d.eval.regions import make_regions
from p4d.video import sample_clip


def test_make_regions_joins_validates_and_renders(tmp_path, video):
    vqa = [
        {"id": "q1", "video": str(video), "question": "Is <obj_1> left of <obj_2>?", "options": ["yes", "no"],
         "answer": "yes", "category": "SR"},
        {"id": "q2", "video": str(video), "question": "How far did <obj_1> move?", "options": ["1 m", "2 m", "3 m", "4 m"],
         "answer": "B", "category": "DP"},
        {"id": "q3", "video": str(video), "question": "What does <obj_1> do?", "options": ["a", "b"], "answer": "A",
         "category": "T"},  # no boxes given: dangling <obj_1>
    ]
    boxes = {
        "q1": [{"label": "obj_1", "box": [4, 20, 40, 60]}, {"label": "obj_2", "bbox": [50, 20, 40, 40]}],
        "q2": [{"label": "obj_1", "mask": {"size": [64, 96], "counts": [64 * 30 + 20, 30, 64 * 96 - 64 * 30 - 50]}}],
        "zz": [{"label": "obj_1", "box": [0, 0, 5, 5]}],
    }
    (tmp_path / "vqa.jsonl").write_text("".join(json.dumps(r) + "\n" for r in vqa))
    (tmp_path / "boxes.json").write_text(json.dumps(boxes))
    out = tmp_path / "mine" / "bench.jsonl"
    made = make_regions(tmp_path / "vqa.jsonl", tmp_path / "boxes.json", out, progress=False)
    assert {p.id: p.reason.split(" but")[0] for p in made.skipped} == {
        "q3": "question refers to <obj_1>", "zz": "boxes given for an id that is not in VQA"}

    bench = load_bench(out)
    assert not bench.problems and [i.id for i in bench.items] == ["q1", "q2"]
    assert bench.items[0].answer == "A" and bench.items[0].regions[1].box == (50, 20, 90, 60)
    assert json.loads(out.read_text().splitlines()[0])["video"].startswith("..")  # relative to OUT's folder

    page = out.with_suffix(".html").read_text()
    assert page.count("<tr>") == 2 and "Is &lt;obj_1&gt; left of &lt;obj_2&gt;?" in page and "<b>A. yes</b>" in page
    png = np.array(Image.open(out.parent / "bench_som" / "00000.png"))
    plain = sample_clip(video, num_frames=1).frames[0]
    changed = np.any(png != plain, axis=2)
    inside = np.zeros_like(changed)
    inside[20:60, 4:40] = inside[20:60, 50:90] = True
    assert changed[20:60, 4:40].any() and changed[20:60, 50:90].any() and not (changed & ~inside).any()
