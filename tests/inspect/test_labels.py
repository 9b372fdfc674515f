"""What every view of a random-teacher store says, and the note on squashed frames (pixel checks)."""

import dataclasses

import numpy as np
import pytest

from p4d.cache_schema import format_summary
from p4d.cache_schema.labels import RANDOM_TEACHER_LABEL
from p4d.inspect import load_clip
from p4d.inspect.figure import compose
from p4d.inspect.panels import LINE_HEIGHT, clip_panels
from p4d.inspect.video import video_frames

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def random_store(random_store_path):
    from p4d.cache_schema import open_store

    return open_store(str(random_store_path))


@pytest.fixture(scope="module")
def clip1(random_store):
    return load_clip(random_store, 1)


def test_summary_and_titles_say_random_teacher(random_store, store, clip1):
    assert RANDOM_TEACHER_LABEL in format_summary(random_store)
    assert RANDOM_TEACHER_LABEL not in format_summary(store)              # the shipped (trained) tiny teacher
    assert load_clip(store, 1).teacher_note is None
    assert clip1.title_lines()[0].startswith(f"{RANDOM_TEACHER_LABEL}: random weights")
    # the source is 96x64 (aspect 1.5), the teacher input 112x112: the note says so
    assert "frames squashed from 96x64 to 112x112 (aspect 1.50 -> 1.00), as the teacher saw them" in clip1.title_lines()


def test_png_and_mp4_frames_carry_one_more_title_line_of_ink(clip1):
    """The same clip with and without the label: the labelled picture is one text line taller,
    and that line (the first title line) holds ink where the unlabelled one starts with the clip line."""
    plain = dataclasses.replace(clip1, teacher_note=None)
    (with_label, _), (without, _) = compose(clip_panels(clip1)), compose(clip_panels(plain))
    assert with_label.shape[0] - without.shape[0] == LINE_HEIGHT
    first_line = with_label[8:8 + LINE_HEIGHT].astype(int)          # MARGIN = 8 above the title
    ink = (first_line.min(axis=2) < 128).sum()
    assert ink > 200                                                 # ~50 characters of text
    # the rest of the picture is the unlabelled one shifted down by one line
    np.testing.assert_array_equal(with_label[8 + LINE_HEIGHT + 16 * 3:, :without.shape[1]],
                                  without[8 + 16 * 3:, :without.shape[1]])
    mp4_first = next(iter(video_frames(clip_panels(clip1), clip1.timestamp)))[0]
    mp4_plain = next(iter(video_frames(clip_panels(plain), plain.timestamp)))[0]
    assert mp4_first.shape[0] - mp4_plain.shape[0] == LINE_HEIGHT


def test_frames_accepts_the_source_indices_the_rows_are_labelled_with(store_path, tmp_path):
    from PIL import Image
    from typer.testing import CliRunner

    from p4d.cli import app
    from p4d.errors import ConfigError
    from p4d.inspect.figure import pick_frames

    source = list(range(16, 32))                                    # clip 2 shows source frames 16..31
    assert pick_frames(16, [20, 31], source_index=source) == [4, 15]
    assert pick_frames(16, [4], source_index=source) == [4]          # a position stays a position
    with pytest.raises(ConfigError, match=r"--frames: expected frame positions in 0..15 or source frame indices"):
        pick_frames(16, [40], source_index=source)
    by_source, by_position = tmp_path / "src.png", tmp_path / "pos.png"
    for out, frames in ((by_source, "20"), (by_position, "4")):
        result = CliRunner().invoke(app, ["inspect", str(store_path), "--clip", "2", "--frames", frames, "--out", str(out)])
        assert result.exit_code == 0, result.output
    a, b = (np.asarray(Image.open(p).convert("RGB")) for p in (by_source, by_position))
    np.testing.assert_array_equal(a, b)
