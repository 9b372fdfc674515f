"""Benchmarks pinned by revision: a known superseded VSTI-Bench (6,042 test items; corrected: 5,736) is warned about."""

import json
import logging

from p4d.eval.revisions import known_old_revision
from p4d.eval.run import load_benchmark


def test_old_vsti_bench_is_known_by_its_item_count():
    assert known_old_revision("data/VSTI-Bench/test.jsonl", 6042).current == 5736
    assert known_old_revision("data/vsti_bench_test.json", 6042) is not None
    assert known_old_revision("data/VSTI-Bench/test.jsonl", 5736) is None  # the corrected revision
    assert known_old_revision("data/other/test.jsonl", 6042) is None


def test_loading_an_old_revision_warns(tmp_path, video, caplog):
    items = [{"id": f"q{k}", "video": str(video), "question": "Q?", "options": ["a", "b"], "answer": "A",
              "category": "DP"} for k in range(6042)]
    path = tmp_path / "VSTI-Bench" / "test.jsonl"
    path.parent.mkdir()
    path.write_text("".join(json.dumps(i) + "\n" for i in items))
    with caplog.at_level(logging.WARNING, logger="p4d.eval.revisions"):
        bench = load_benchmark(path)
    assert len(bench.items) == 6042
    assert any("6042 items is the superseded vstibench revision (the corrected one has 5736)" in r.getMessage()
               for r in caplog.records)
    path.write_text("".join(json.dumps(i) + "\n" for i in items[:5736]))
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="p4d.eval.revisions"):
        load_benchmark(path)
    assert not caplog.records
