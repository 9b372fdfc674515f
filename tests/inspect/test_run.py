"""inspect_store: clear errors for failed/pending/out-of-range clips and bad flags; a store still
being written; the not-yet-available student run."""

import shutil

import numpy as np
import pytest
import zarr

from p4d.errors import CheckpointError, ClipNotAvailableError, ConfigError
from p4d.inspect import inspect_store, parse_clip_spec
from p4d.inspect.run import parse_frames, parse_steps

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("suffix", [".png", ".mp4"])
def test_failed_clip_names_the_flag_and_the_reason(store_path, tmp_path, suffix):
    with pytest.raises(ClipNotAvailableError, match=r"--clip 0: clip 0 of .* failed: .*bad\.mp4.*cannot be opened"):
        inspect_store(str(store_path), tmp_path / f"x{suffix}", clip=0)
    assert not (tmp_path / f"x{suffix}").exists()


def test_out_of_range_clip(store_path, tmp_path):
    with pytest.raises(ClipNotAvailableError, match=r"--clip 7: .*out of range \[0, 5\)"):
        inspect_store(str(store_path), tmp_path / "x.png", clip="7")


def test_bad_flags(store_path, tmp_path):
    with pytest.raises(ConfigError, match=r"--out .*x\.gif: expected a file ending in \.png, \.mp4, \.html"):
        inspect_store(str(store_path), tmp_path / "x.gif", clip=1)
    with pytest.raises(ConfigError, match="shows one clip"):
        inspect_store(str(store_path), tmp_path / "x.png", clip="1-2")
    with pytest.raises(ConfigError, match="--clip 'x1'"):
        inspect_store(str(store_path), tmp_path / "x.html", clip="x1")
    with pytest.raises(ConfigError, match="--steps: needs --compare"):
        inspect_store(str(store_path), tmp_path / "x.png", clip=1, steps="all")


def test_compare_needs_a_run_with_checkpoints(store_path, tmp_path):
    (tmp_path / "run" / "checkpoints" / "step-000005").mkdir(parents=True)  # incomplete: no meta.json
    with pytest.raises(CheckpointError, match=r"--compare .*run: no student checkpoint there"):
        inspect_store(str(store_path), tmp_path / "x.png", clip=1, compare=str(tmp_path / "run"))
    with pytest.raises(ConfigError, match="--compare --steps writes a .png"):
        inspect_store(str(store_path), tmp_path / "x.html", clip=1, compare="runs/p4d", steps="all")


def test_default_clip_is_the_first_done_one(store_path, tmp_path):
    assert inspect_store(str(store_path), tmp_path / "d.png", frames=[0]).clips == [1]


def test_a_store_still_being_written(store_path, tmp_path):
    """Clips 3-4 pending (their shard not written yet): the page renders done clips only and lists
    the pending ones; asking for a pending clip says so."""
    copy = tmp_path / "partial.zarr"
    shutil.copytree(store_path, copy)
    status = zarr.open_array(store=str(copy / "clips" / "status"), mode="r+", zarr_format=3)
    status[3:5] = np.zeros(2, np.uint8)
    result = inspect_store(f"file://{copy}", tmp_path / "partial.html")
    assert result.clips == [1, 2]
    assert result.not_rendered[3] == "pending" and result.not_rendered[4] == "pending"
    assert "2 done, 1 failed,\n2 pending" in (tmp_path / "partial.html").read_text()
    with pytest.raises(ClipNotAvailableError, match="--clip 3: .*pending"):
        inspect_store(str(copy), tmp_path / "p.png", clip=3)


def test_parsers():
    assert parse_clip_spec("0-2,5, 9", 10) == [0, 1, 2, 5, 9]
    assert parse_clip_spec("all", 10) is None and parse_clip_spec(None, 10) is None
    assert parse_clip_spec(4, 10) == [4]
    with pytest.raises(ConfigError, match="--clip '3-1'"):
        parse_clip_spec("3-1", 10)
    assert parse_frames("0, 5,10") == [0, 5, 10] and parse_frames("all") is None
    with pytest.raises(ConfigError, match="--frames"):
        parse_frames("a")
    assert parse_steps(None) is False and parse_steps("all") is None and parse_steps("10,20") == [10, 20]
