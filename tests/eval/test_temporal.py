"""make-temporal: answers from the containers' real durations; a timestamp-reading model gets them right."""

from __future__ import annotations

import re

import numpy as np
import pytest

from p4d.errors import ConfigError
from p4d.eval.items import load_bench
from p4d.eval.run import EvalConfig, run_eval
from p4d.eval.temporal import QUESTION, answer_positions, make_temporal
from p4d.video import write_synthetic_video


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("temporal")
    write_synthetic_video(folder / "a.mp4", num_frames=24, fps=12, size=(64, 48), seed=1)   # 2.0 s
    write_synthetic_video(folder / "sub" / "b.mkv", num_frames=30, fps=10, size=(64, 48), seed=2)  # 3.0 s
    (folder / "notes.mp4").write_text("not a video")
    return folder


class TimestampReader:
    """Picks the option nearest to the span its timestamps cover (last timestamp + one frame step)."""

    def answer(self, frames, timestamps, question_text, options):
        span = timestamps[-1] + (timestamps[-1] - timestamps[-2])
        values = [float(re.match(r"[\d.]+", o).group(0)) for o in options]
        return "ABCDEFGHI"[int(np.argmin([abs(v - span) for v in values]))]


def test_make_temporal_answers_are_the_real_durations(tmp_path, videos):
    out = tmp_path / "bench" / "temporal.jsonl"
    made = make_temporal(videos, out, num_options=5, progress=False)
    assert [p.id for p in made.skipped] == [str(videos / "notes.mp4")]
    bench = load_bench(out)
    assert not bench.problems and len(bench.items) == 2
    truth = {"a": 2.0, "b": 3.0}  # frames / fps of the written files
    for item in bench.items:
        assert item.question == QUESTION and item.category == "TIME" and len(item.options) == 5
        chosen = item.options[item.letters.index(item.answer)]
        assert chosen == f"{truth[item.video.stem]:.1f} seconds"
        values = [float(o.split()[0]) for o in item.options]
        # >= 1.33x apart before rounding to 0.1 s (0.75 -> "0.8" next to 1.0 gives 1.25 after it)
        assert values == sorted(values) and min(b / a for a, b in zip(values, values[1:])) >= 1.2

    result = run_eval(EvalConfig(bench=out, out=tmp_path / "p.jsonl", model_dir=tmp_path, frames=8, progress=False),
                      model=TimestampReader())
    assert result.summary.column("TIME").count == 2 and result.summary.column("TIME").accuracy == 100.0


def test_numeric_variant_and_a_list_file(tmp_path, videos):
    listing = tmp_path / "list.txt"
    listing.write_text(f"{videos / 'a.mp4'}\n# a comment\n\n{videos / 'sub' / 'b.mkv'}\n")
    made = make_temporal(listing, tmp_path / "t.jsonl", numeric=True, progress=False)
    assert sorted(i.answer for i in made.items) == pytest.approx([2.0, 3.0])
    assert all(i.is_numeric for i in load_bench(tmp_path / "t.jsonl").items)


def test_bad_inputs(tmp_path):
    with pytest.raises(ConfigError, match="VIDEOS .*nowhere: no such folder or file"):
        make_temporal(tmp_path / "nowhere", tmp_path / "t.jsonl", progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no video files found"):
        make_temporal(tmp_path / "empty", tmp_path / "t.jsonl", progress=False)


def test_answer_positions_are_balanced_over_the_letters(tmp_path, videos):
    """Eight videos, four options: each letter is the answer twice, so always answering the most
    frequent letter scores chance (25 %); p4d eval prints that baseline row."""
    folder = tmp_path / "eight"
    folder.mkdir()
    for k in range(8):
        (folder / f"v{k}.mp4").symlink_to(videos / "a.mp4")
    out = tmp_path / "t.jsonl"
    made = make_temporal(folder, out, num_options=4, progress=False)
    assert sorted(i.answer for i in made.items) == list("AABBCCDD")
    for item in made.items:  # the true duration (2.0 s) sits at the answer's letter
        assert item.options[item.letters.index(item.answer)] == "2.0 seconds"
    result = run_eval(EvalConfig(bench=out, out=tmp_path / "m.jsonl", baseline="most-frequent-letter", progress=False))
    assert result.summary.column("TIME").accuracy == 25.0


def test_answer_position_counts():
    rng = np.random.default_rng(0)
    counts = np.bincount(answer_positions(14, 5, rng), minlength=5)
    assert counts.max() - counts.min() <= 1 and counts.sum() == 14
    assert set(answer_positions(6, 9, rng)) == {4}            # nine options: four below, four above
    assert set(answer_positions(40, 7, rng)) == {2, 3, 4}      # at most four distractors on either side
