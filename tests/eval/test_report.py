"""`p4d eval report`: runs grouped into Tabs. 4-7 by their saved presets."""

from __future__ import annotations

import json

import pytest

from p4d.errors import ConfigError
from p4d.eval.report import format_report, load_runs


def _run(path, preset, scores, baseline=None, frames=16):
    """A predictions file with one VG and one C item per score pair."""
    header = {"type": "header", "bench_sha256": "x", "model": None if baseline else "m", "baseline": baseline,
              "frames": frames, "preset": preset}
    lines = [header] + [{"type": "prediction", "id": f"{c}{k}", "category": c, "split": "static" if c == "VG" else "dynamic",
                         "score": s} for k, (vg, cc) in enumerate(scores) for c, s in (("VG", vg), ("C", cc))]
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return path


def test_report_tables_follow_the_presets(tmp_path):
    default = {"strategy": "p4d", "loss": "ld+ed", "time_cue": "tpe", "trainable": "tune-p+llm"}
    runs = [
        _run(tmp_path / "full.jsonl", default, [(1, 1), (1, 0)]),                          # VG 100, C 50
        _run(tmp_path / "sft.jsonl", dict(default, strategy="4d-sft", loss=None), [(0, 1), (1, 0)]),
        _run(tmp_path / "ldonly.jsonl", dict(default, loss="ld-only"), [(0, 0), (1, 0)]),
        _run(tmp_path / "notime.jsonl", dict(default, time_cue="none"), [(0, 0), (0, 0)]),
        _run(tmp_path / "odd.jsonl", dict(default, loss="ld-only", time_cue="none"), [(1, 1), (1, 1)]),
        _run(tmp_path / "rand.jsonl", {}, [(0.2, 0.25), (0.2, 0.25)], baseline="random"),
    ]
    text = format_report(load_runs(runs))
    sections = {s.split("\n")[0]: s for s in text.strip().split("\n\n### ")}
    assert set(sections) == {"### Tab. 4: training strategy", "Tab. 5: distillation losses", "Tab. 6: time cues",
                             "Tab. 7: trainable parts", "Other runs"}
    tab4 = sections["### Tab. 4: training strategy"].splitlines()
    # baseline first, then the paper's order: 4d-sft before p4d
    assert [line.split(" | ")[0] for line in tab4[4:-2]] == ["| Random", "| 4d-sft", "| p4d", "| # items"]
    assert tab4[-2:] == ["", "items file sha256: x"]  # every run's header has sha256 "x"
    assert tab4[5] == "| 4d-sft | 16 | 50.0 | 50.0 | 50.0 | 50.0 | – | – | – | 50.0 | – | – | – | – |"
    assert tab4[4].startswith("| Random | 16 | 22.5 | 20.0 | 25.0 |")
    tab5 = sections["Tab. 5: distillation losses"].splitlines()
    assert [line.split(" | ")[0] for line in tab5[4:-2]] == ["| Random", "| ld-only", "| ld+ed", "| # items"]
    assert "| none |" in sections["Tab. 6: time cues"]
    assert [line.split(" | ")[0] for line in sections["Tab. 7: trainable parts"].splitlines()[4:-2]] == \
        ["| Random", "| tune-p+llm", "| # items"]
    assert "| odd (strategy=p4d, loss=ld-only, time_cue=none, trainable=tune-p+llm) |" in sections["Other runs"]


def test_report_reads_folders_and_refuses_missing_runs(tmp_path):
    (tmp_path / "runs").mkdir()
    _run(tmp_path / "runs" / "a.jsonl", {"strategy": "zero-shot"}, [(1, 0)])
    assert "| zero-shot |" in format_report(load_runs([tmp_path / "runs"]))
    with pytest.raises(ConfigError, match="RUN .*nope.jsonl: no such predictions file"):
        load_runs([tmp_path / "nope.jsonl"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="holds no \\*.jsonl"):
        load_runs([tmp_path / "empty"])


def test_report_names_the_items_files(tmp_path):
    """Each table states the sha256 of the items file its runs were scored on; differing files are flagged."""
    from p4d.eval.predictions import PredictionsWriter
    from p4d.eval.report import format_report, load_runs

    for name, sha in (("a", "1" * 64), ("b", "2" * 64)):
        writer = PredictionsWriter(tmp_path / f"{name}.jsonl", {"bench_sha256": sha, "baseline": "random", "frames": 16})
        writer.append({"id": "q", "category": "VG", "split": "static", "score": 0.5})
    one = format_report(load_runs([tmp_path / "a.jsonl"]))
    assert f"items file sha256: {'1' * 64}" in one
    both = format_report(load_runs([tmp_path / "a.jsonl", tmp_path / "b.jsonl"]))
    assert f"items files differ (not comparable): Random: {'1' * 64}; Random: {'2' * 64}" in both
