"""The PNG grid on a real store: tiles are the source frames at the stored indices and the maps."""

import matplotlib
import numpy as np
import pytest
from PIL import Image

from p4d.cache_schema import read_clip
from p4d.errors import ConfigError
from p4d.inspect import inspect_store, load_clip
from p4d.inspect.figure import compose, pick_frames, write_png
from p4d.inspect.panels import clip_panels
from p4d.video import decode_frames, read_frame_code, resize_frames

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def clip2(store):
    return load_clip(store, 2)  # good0.mp4, source frames 16..31


@pytest.fixture(scope="module")
def panels2(clip2):
    return clip_panels(clip2)


def test_clip_data_is_the_stored_clip(store, clip2, video_dir):
    assert clip2.frame_index.tolist() == list(range(16, 32))
    np.testing.assert_allclose(clip2.timestamp, np.arange(16, 32) / 12, atol=1e-4)
    assert clip2.video_path.endswith("good0.mp4") and clip2.frames_note is None
    assert clip2.frames.shape == (16, 112, 112, 3)
    assert clip2.f4d.shape == (4, 8, 8, 8, 64)
    title = "\n".join(clip2.title_lines())
    assert "clip 2" in title and "good0.mp4" in title and "t = 1.333..2.583 s" in title


def test_png_size_rows_and_frame_tiles(panels2, clip2, video_dir, tmp_path):
    out = tmp_path / "clip2.png"
    layout = write_png(panels2, out)
    img = np.asarray(Image.open(out).convert("RGB"))
    assert (img.shape[1], img.shape[0]) == layout.size
    assert layout.num_rows == 16 and layout.tile_hw == (112, 112)
    # frame, depth, flow, motion, rays + one PCA column per tap
    assert panels2.columns[:5] == ["frame", "depth", "flow", "motion", "rays (dir. RGB)"]
    assert layout.num_cols == 5 + 4
    assert img.shape[0] >= 16 * 112 and img.shape[1] >= 9 * 112
    want = decode_frames(video_dir / "good0.mp4", np.arange(16, 32), size=(112, 112)).frames
    for row in (0, 7, 15):
        left, top, right, bottom = layout.tile_box(row, 0)
        tile = img[top:bottom, left:right]
        np.testing.assert_array_equal(tile, want[row])  # PNG is lossless
        # the synthetic video codes its frame index in the pixels: read it back from the figure
        assert read_frame_code(resize_frames(tile[None], (64, 96))[0]) == 16 + row


def test_depth_tile_is_the_cached_depth_through_the_colormap(store, panels2, tmp_path):
    depth = read_clip(store, 2)["depth"]
    image, layout = compose(panels2, [3])
    left, top, right, bottom = layout.tile_box(0, 1)
    tile = image[top:bottom, left:right].astype(int)
    lo, hi = np.percentile(depth, [2, 98])
    rgb = np.asarray(matplotlib.colormaps["turbo_r"](np.clip((depth[3, ..., 0] - lo) / (hi - lo), 0, 1)))[..., :3]
    assert np.abs(tile - rgb * 255).max() <= 1


def test_frame_subset_and_tile_scaling(panels2):
    image, layout = compose(panels2, [0, 8], tile_height=56)
    assert layout.num_rows == 2 and layout.tile_hw == (56, 56)
    assert image.shape[:2] == (layout.size[1], layout.size[0])
    assert pick_frames(16, 4) == [0, 5, 10, 15]
    with pytest.raises(ConfigError, match="--frames"):
        pick_frames(16, [3, 16])


def test_missing_source_video_gives_grey_frames_and_a_note(store, tmp_path):
    data = load_clip(store, 3, video_root=tmp_path)  # recorded path exists: video_root unused
    assert data.frames_note is None
    import shutil

    from p4d.cache_schema import open_store

    moved = tmp_path / "store.zarr"
    shutil.copytree(store.url, moved)
    # a store whose videos moved: point --video-root at a folder holding them by file name
    from p4d.inspect.clipdata import resolve_video_path

    assert resolve_video_path("/nowhere/good1.mp4", tmp_path) == tmp_path / "good1.mp4"
    assert resolve_video_path("sub/a.mp4", tmp_path) == tmp_path / "sub" / "a.mp4"
    s = open_store(str(moved))
    s.videos = [v.__class__(**{**v.to_dict(), "path": "/nowhere/" + v.path.rsplit("/", 1)[-1]}) for v in s.videos]
    data = load_clip(s, 3)
    assert data.frames_note and "/nowhere/good1.mp4" in data.frames_note
    assert np.unique(data.frames).tolist() == [128]
    assert any("source frames unavailable" in line for line in data.title_lines())


def test_inspect_store_writes_a_png_from_a_file_url(store_path, tmp_path):
    out = tmp_path / "via_url.png"
    result = inspect_store(f"file://{store_path}", out, clip="4", frames=[0, 15])
    assert result.clips == [4] and out.exists()
    with Image.open(out) as im:
        assert im.format == "PNG" and im.height > 2 * 112
