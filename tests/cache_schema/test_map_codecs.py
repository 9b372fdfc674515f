"""quant16 map codec: stated bounds hold against hand-computed truth, a clip that cannot meet its
bound falls back to float16 (recorded, summarised), every reader (read_clips, open_targets on the
host and on a torch device, the train loader's stored-parts path, its flip) gives values within
the bound of the float32 written, and stores made before map codecs (float16 maps) read unchanged."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from p4d.cache_schema import create_store, open_store, read_clips, verify, write_shard
from p4d.cache_schema.map_codecs import MAP_QUANT, decode_map, encode_map, map_error, roundtrip_map
from p4d.cache_schema.summary import format_summary
from p4d.train.augment import flip_map, flip_targets
from p4d.train.device_decode import decode_target_parts

from .conftest import tiny_spec, tiny_videos
from .helpers import clip_truth, shard_arrays

DATA = Path(__file__).parent / "data"


def _within(m: str, got: np.ndarray, want: np.ndarray) -> float:
    """Max error of ``got`` vs ``want`` in the map's own measure (relative for depth)."""
    err = np.abs(got.astype(np.float64) / want - 1) if m == "depth" else np.abs(got.astype(np.float64) - want)
    return float(err.max())


def test_stated_bounds_are_the_documented_numbers():
    assert MAP_QUANT["depth"].bound == 0.0025 and MAP_QUANT["flow"].bound == 1 / 16
    assert MAP_QUANT["motion"].bound == 1 / 32 and MAP_QUANT["camray"].bound == 1e-4
    # log step: a relative error exp(step / 2) - 1 just inside 0.25 %
    assert math.exp(MAP_QUANT["depth"].step / 2) - 1 < 0.0025 < math.exp(MAP_QUANT["depth"].step / 2 * 1.02) - 1


def test_depth_ramp_round_trip_within_the_relative_bound_and_the_bound_is_tight():
    # 0.5 m to 80 m, log-spaced ramp over 16 x 8 x 8 pixels
    depth = np.exp(np.linspace(np.log(0.5), np.log(80.0), 16 * 8 * 8)).reshape(1, 16, 8, 8, 1).astype(np.float32)
    got, fallback = roundtrip_map("depth", depth)
    assert not fallback.any()
    rel = _within("depth", got, depth)
    assert rel <= 0.0025
    assert rel > 0.0025 / 2  # a ramp through many steps meets nearly half a step: the step is not finer than stated
    # hand-computed: log-range ln(160) = 5.075 over a step of ~0.00492 is ~1031 codes around the centre
    codes, quant, err = encode_map("depth", depth)
    assert quant[0, 1, 0] == pytest.approx((np.log(0.5) + np.log(80.0)) / 2, abs=1e-6)
    assert codes.min() == pytest.approx(-np.log(160) / 2 / MAP_QUANT["depth"].step, abs=1)
    assert err[0] == pytest.approx(rel, rel=1e-4)  # the recorded error (float32 arithmetic)


def test_flow_of_known_pixel_values():
    step = MAP_QUANT["flow"].step
    values = np.array([0.0, 0.25, -3.5, 17.0, 100.0, -250.125], np.float32)
    flow = np.zeros((1, 2, 3, 6, 2), np.float32)
    flow[..., 0] = values
    flow[..., 1] = -values / 2
    codes, quant, err = encode_map("flow", flow)
    got = decode_map("flow", codes, quant)
    # offset = the centre of each channel's range, codes = rint((x - offset) / step)
    assert quant[0, 1, 0] == pytest.approx((100.0 - 250.125) / 2) and quant[0, 0, 0] == np.float32(step)
    want_codes = np.rint((values - np.float32((100.0 - 250.125) / 2)) / np.float32(step))
    np.testing.assert_array_equal(codes[0, 0, 0, :, 0], want_codes)
    assert np.abs(got - flow).max() <= 1 / 16 and err[0] == pytest.approx(float(np.abs(got - flow).max()), rel=1e-4)


def test_a_clip_past_the_range_or_non_finite_falls_back_to_float16():
    rng = np.random.default_rng(0)
    flow = rng.normal(0, 3, (3, 2, 4, 4, 2)).astype(np.float32)
    flow[1, 0, 0, 0, 0] = 10_000.0   # 10,000 px: more than 2 x 32767 steps of 1/8 px from the other end
    flow[2, 0, 0, 0, 1] = np.nan
    codes, quant, err = encode_map("flow", flow)
    assert np.isnan(quant[:, 0, 0]).tolist() == [False, True, True]
    got = decode_map("flow", codes, quant)
    np.testing.assert_array_equal(got[1], flow[1].astype(np.float16).astype(np.float32))  # float16 as before
    assert np.isnan(got[2, 0, 0, 0, 1]) and err[2] == np.inf and err[1] <= 10_000 * 2**-11
    depth = np.full((2, 2, 4, 4, 1), 3.0, np.float32)
    depth[1, 1, 2, 2, 0] = 0.0        # log(0): no log-depth code
    _, quant, _ = encode_map("depth", depth)
    assert np.isnan(quant[:, 0, 0]).tolist() == [False, True]


def test_write_read_targets_and_loader_parts_are_within_the_bound(tmp_path):
    from p4d.targets import open_targets

    spec = tiny_spec()
    assert spec.map_codec == "quant16"  # the default of a new store
    store = create_store(str(tmp_path / "c.zarr"), spec, tiny_videos())
    arrays = shard_arrays(store, 1)  # clips 2, 3
    arrays["flow"][1, 1, 0, 0, 0] = 50_000.0  # clip 3's flow cannot meet 1/16 px: float16 fallback
    write_shard(store, 1, arrays)
    store = open_store(store.url)
    assert store.array("maps/depth").attrs["codec"]["bound"] == 0.0025  # what zarr/xarray users read
    got = read_clips(store, [2, 3])
    for m in spec.modalities:
        for k in range(2):
            want = arrays[m][k]
            bound = MAP_QUANT[m].bound if not (m == "flow" and k == 1) else 50_000 * 2**-11
            assert _within(m, got[m][k], want) <= bound, (m, k)
    np.testing.assert_array_equal(got["flow"][1], arrays["flow"][1].astype(np.float16).astype(np.float32))
    # the stored parts decoded on a torch device (the trainer's path) equal the host decode
    parts = read_clips(store, [2, 3], fields=list(spec.modalities), decode=False)
    assert parts["depth"].dtype == np.int16 and parts["flow_quant"].shape == (2, 2, 2)
    dev = decode_target_parts(spec.latent_codec, {k: torch.from_numpy(v) for k, v in parts.items()})
    assert sorted(dev) == sorted(spec.modalities)
    for m in spec.modalities:
        np.testing.assert_array_equal(dev[m].numpy(), got[m])
    # open_targets: numpy and device paths, release layout (channels-first)
    frames = read_clips(store, [2, 3], fields=["frame_index"])["frame_index"]
    for device in (None, "cpu"):
        out = open_targets(store, layout="p4d", device=device).read([2, 3], frames)
        depth = out["depth"] if device is None else out["depth"].numpy()
        assert _within("depth", depth, arrays["depth"]) <= 0.0025
    # the summary names the bound check and the fallback clip; verify finds nothing wrong
    text = format_summary(store)
    assert "map codec quant16 self-check" in text and "missed the bound: clips 3" in text
    assert verify(store).problems == []


def test_flip_in_code_space_equals_flipping_the_decoded_map():
    spec = tiny_spec()
    truth = clip_truth(spec, 5)
    for m in spec.modalities:
        x = truth[m][None]
        for fallback in (False, True):
            if fallback:
                x = x.copy()
                x.flat[0] = 0.0 if m == "depth" else 1e5  # no log code / past 2 x 32767 steps: float16
            codes, quant, _ = encode_map(m, x)
            assert np.isnan(quant[0, 0, 0]) == fallback
            flipped = flip_targets({m: codes[0], f"{m}_quant": quant[0]})
            got = decode_map(m, flipped[m][None], flipped[f"{m}_quant"][None])[0]
            np.testing.assert_array_equal(got, flip_map(m, decode_map(m, codes, quant)[0]))


def test_a_store_made_before_map_codecs_reads_unchanged(tmp_path):
    """data/dpcm_v1.zarr was written by p4d at 6bba59c (float16 depth, no map_codec in its spec)."""
    shutil.copytree(DATA / "dpcm_v1.zarr", tmp_path / "v1.zarr")
    store = open_store(str(tmp_path / "v1.zarr"))
    assert store.spec.map_codec == "float16" and "maps/depth_quant" not in store.layouts
    raw = np.asarray(store.array("maps/depth")[0:3])
    assert raw.dtype == np.float16
    np.testing.assert_array_equal(read_clips(store, [0, 1, 2], fields=["depth"])["depth"], raw.astype(np.float32))
    parts = read_clips(store, [0, 1, 2], fields=["depth"], decode=False)
    assert sorted(parts) == ["depth"] and parts["depth"].dtype == np.float16
    assert "map codec quant16" not in format_summary(store)
    # and a new store asked for float16 keeps that layout
    new = create_store(str(tmp_path / "f16.zarr"), tiny_spec(map_codec="float16"), tiny_videos())
    assert new.array("maps/flow").dtype == np.float16 and "maps/flow_quant" not in new.layouts


def test_map_error_measures():
    src = np.array([[1.0, 2.0, 4.0]], np.float32)
    assert map_error("depth", src * 1.001, src)[0] == pytest.approx(0.001, rel=1e-4)
    assert map_error("flow", src + 0.01, src)[0] == pytest.approx(0.01, rel=1e-4)


def test_the_documented_numpy_map_decoder_equals_read_clips(tmp_path):
    """The ```python block defining decode_map in docs/design.md, as a user would paste it."""
    import re

    text = (Path(__file__).resolve().parents[2] / "docs" / "design.md").read_text()
    section = text[text.index("## Reading the cache without p4d"):]
    code = next(c for c in re.findall(r"```python\n(.*?)```", section, re.S) if "def decode_map" in c)
    namespace: dict = {}
    exec(compile(code, "docs/design.md", "exec"), namespace)
    store = create_store(str(tmp_path / "c.zarr"), tiny_spec(), tiny_videos())
    arrays = shard_arrays(store, 0)
    arrays["camray"][1, 0, 0, 0, 3] = 1e3  # clip 1's camray misses its bound: float16
    write_shard(store, 0, arrays)
    truth = read_clips(store, [0, 1])
    for m in store.spec.modalities:
        for clip in (0, 1):
            np.testing.assert_array_equal(namespace["decode_map"](store.url, m, clip), truth[m][clip])
    assert np.isnan(np.asarray(store.array("maps/camray_quant")[1])[0]).all()


def test_a_map_that_barely_moves_keeps_its_shape():
    """A flow channel with std 0.05 px (the tiny teacher's) is quantised at std / 8, not flattened to the
    ~5 levels the 0.123 px bound-step would leave; one at L4P scale (std 3 px) keeps the bound's step."""
    rng = np.random.default_rng(1)
    small = rng.normal(0, 0.05, (1, 4, 16, 16, 2)).astype(np.float32)
    big = small * 60
    codes, quant, err = encode_map("flow", np.concatenate([small, big]))
    std = small[0].reshape(-1, 2).std(axis=0)
    np.testing.assert_allclose(quant[0, 0], std / 8, rtol=1e-6)
    assert (quant[1, 0] == np.float32(MAP_QUANT["flow"].step)).all()
    assert err[0] <= float(std.max()) / 16 * 1.01 and err[1] <= 1 / 16
    assert len(np.unique(codes[0, ..., 0])) > 40  # vs ~5 levels at the bound's step
