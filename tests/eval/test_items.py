"""Benchmark items: the R4D-Bench form is read and normalised; malformed items are reported by id."""

from __future__ import annotations

import pytest

from p4d.errors import ConfigError
from p4d.eval.items import load_bench


def test_malformed_items_are_reported_by_id_and_the_rest_load(tmp_path, video, mcq, write_bench):
    good = mcq("ok", "VG", answer="C", n_options=5)
    bad = [
        {k: v for k, v in mcq("no-answer", "C").items() if k != "answer"},
        mcq("letter-out-of-range", "C", answer="E"),            # 4 options: A-D
        mcq("text-not-an-option", "C", answer="option 9"),
        mcq("unknown-category", "Teleportation"),
        dict(mcq("missing-video", "T"), video="nowhere/x.mp4"),
        {k: v for k, v in mcq("no-video-field", "T").items() if k != "video"},
        dict(mcq("split-clash", "VG"), split="dynamic"),
        dict(mcq("dangling-ref", "SR"), question="Is <obj_2> left of <obj_1>?",
             regions=[{"label": "obj_1", "box": [0, 0, 10, 10]}]),
        mcq("ok", "T"),                                          # duplicate id
    ]
    bench = load_bench(write_bench(tmp_path / "bench.json", [good, *bad]))
    assert [i.id for i in bench.items] == ["ok"]
    reasons = {p.id: p.reason for p in bench.problems}
    assert set(reasons) == {"no-answer", "letter-out-of-range", "text-not-an-option", "unknown-category",
                            "missing-video", "no-video-field", "split-clash", "dangling-ref", "ok"}
    assert reasons["no-answer"] == "missing answer"
    assert "not among the options" in reasons["letter-out-of-range"]
    assert "not among the options" in reasons["text-not-an-option"]
    assert "unknown category 'Teleportation'" in reasons["unknown-category"]
    assert reasons["missing-video"].startswith("video not found") and "nowhere/x.mp4" in reasons["missing-video"]
    assert reasons["no-video-field"] == "missing video"
    assert "disagrees" in reasons["split-clash"]
    assert "<obj_2>" in reasons["dangling-ref"]
    assert "duplicate id" in reasons["ok"]


def test_jsonl_with_a_broken_line_and_records_without_id(tmp_path, mcq):
    path = tmp_path / "bench.jsonl"
    import json
    path.write_text(json.dumps(mcq("a", "C")) + "\n{not json\n" + json.dumps({"question": "?"}) + "\n")
    bench = load_bench(path)
    assert [i.id for i in bench.items] == ["a"]
    assert [(p.id, p.reason.split(" (")[0]) for p in bench.problems] == [("line 2", "not valid JSON"), ("#3", "missing id")]


def test_forms_are_normalised(tmp_path, video, write_bench):
    items = [
        {"id": "prefixed", "video": video.name, "question": "Where does <obj_1> go?",
         "options": ["A. left", "B. right", "C. up", "D. down"], "answer": "(b)", "category": "Translational",
         "regions": [{"label": "obj_1", "bbox": [10, 5, 20, 30]}]},
        {"id": "dict", "video": str(video), "question": "?", "options": {"A": "1 m", "B": "2 m", "C": "3 m"},
         "answer": "2 m", "category": "dimension measurement", "split": "Static"},
        {"id": "numeric", "video": str(video), "question": "How far?", "answer": "2.5", "category": "DP"},
        {"id": "mask", "video": str(video), "question": "Count <obj_1>", "options": ["1", "2"], "answer": "2",
         "category": "C", "regions": [{"label": "<obj_1>", "mask": {"size": [64, 96], "counts": [100, 50, 6144 - 150]}},
                                     {"label": "obj_2", "polygon": [[1, 1], [30, 1], [30, 20]]}]},
    ]
    (tmp_path / video.name).symlink_to(video)
    bench = load_bench(write_bench(tmp_path / "b.json", items))
    assert not bench.problems
    by_id = {i.id: i for i in bench.items}
    p = by_id["prefixed"]
    assert p.options == ("left", "right", "up", "down") and p.answer == "B" and p.category == "T" and p.split == "dynamic"
    assert p.video == tmp_path / video.name  # relative to the benchmark file
    assert p.regions[0].box == (10, 5, 30, 35)  # COCO [x, y, w, h] -> [x0, y0, x1, y1]
    assert by_id["dict"].answer == "B" and by_id["dict"].category == "DM" and by_id["dict"].split == "static"
    assert by_id["numeric"].is_numeric and by_id["numeric"].answer == 2.5
    m = by_id["mask"]
    assert m.answer == "B" and [r.label for r in m.regions] == ["obj_1", "obj_2"]
    mask = m.regions[0].to_region((64, 96)).mask
    assert mask.sum() == 50 and mask[36:64, 1].all() and mask[:22, 2].all()  # column-major runs: 100 zeros, 50 ones
    with pytest.raises(ConfigError, match="does not match the first frame"):
        m.regions[0].to_region((48, 64))
    poly = m.regions[1].to_region((64, 96)).mask
    assert poly[2, 20] and not poly[15, 5]  # inside / outside the triangle (1,1)-(30,1)-(30,20)


def test_bad_region_and_options_are_reported(tmp_path, mcq, write_bench):
    items = [
        dict(mcq("two-shapes", "VG"), regions=[{"label": "obj_1", "box": [0, 0, 5, 5], "polygon": [0, 0, 5, 0, 5, 5]}]),
        dict(mcq("empty-box", "VG"), regions=[{"label": "obj_1", "box": [5, 5, 5, 9]}]),
        dict(mcq("bad-rle", "VG"), regions=[{"label": "obj_1", "mask": {"size": [4, 4], "counts": [3, 3]}}]),
        dict(mcq("one-option", "VG"), options=["only"]),
        dict(mcq("dup-options", "VG"), options=["x", "X", "y"]),
        {"id": "numeric-text", "video": mcq("x", "VG")["video"], "question": "?", "answer": "far", "category": "DP"},
    ]
    bench = load_bench(write_bench(tmp_path / "b.json", items))
    reasons = {p.id: p.reason for p in bench.problems}
    assert not bench.items and len(reasons) == 6
    assert "exactly one of box, bbox, mask, polygon" in reasons["two-shapes"]
    assert "empty" in reasons["empty-box"]
    assert "h*w = 16" in reasons["bad-rle"]
    assert "2 to 26 options" in reasons["one-option"]
    assert "distinct" in reasons["dup-options"]
    assert "numeric answer" in reasons["numeric-text"]


def test_unreadable_benchmark_file_is_one_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        load_bench(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{oops")
    with pytest.raises(ConfigError, match="bad.json: not valid JSON"):
        load_bench(tmp_path / "bad.json")

