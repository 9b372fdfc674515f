"""`p4d bench fidelity`: at its smallest size the bench separates its controls (all-zero targets and a
damaged codec train a clearly worse student than exact targets; the exact rerun is identical bit for bit),
and its byte counts and reachable-LD decomposition hold by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch


@pytest.mark.slow
def test_fidelity_bench_separates_its_controls_at_the_smallest_size():
    from p4d.bench import fidelity

    setup = fidelity.LearningSetup(2, 2, 12)  # 1 train batch of 2 clips, 1 held-out batch, 12 steps
    names = ("float32", "float32 (rerun)", fidelity.ZERO_ROW, "zeros (control)")
    rows, notes, shapes = fidelity._learning_rows_for(setup, names)
    rows = {r.entry: r for r in rows}
    ld = {n: rows[f"{n}: held-out LD above floor after 12 steps vs float32"] for n in names}
    for n in names:
        assert f"{n}: held-out ED after 12 steps vs float32" in rows
        assert math.isfinite(ld[n].candidate)
    # the exact rerun: identical bit for bit, so a codec row's delta is the codec's
    assert ld["float32 (rerun)"].candidate == ld["float32"].candidate
    assert ld["float32 (rerun)"].extra["train LD"] == ld["float32"].extra["train LD"]
    # the controls: destroyed targets well beyond the separation, the damaged codec beyond the 1 % goal
    assert ld["zeros (control)"].ratio >= 1 + fidelity.SEPARATION
    assert ld[fidelity.ZERO_ROW].ratio > 1 + fidelity.GOAL_LEARNING.target
    assert ld["zeros (control)"].ratio > ld[fidelity.ZERO_ROW].ratio
    # held-out LD = LD above the floor + the same floor in every row (D_4DP is linear)
    floor = ld["float32"].extra["held LD"] - ld["float32"].candidate
    zero = ld["zeros (control)"]
    assert floor > 0 and zero.extra["held LD"] - zero.candidate == pytest.approx(floor, rel=1e-4)
    assert zero.extra["held LD ratio"] > 1.0
    assert ld["float32"].extra["bytes/raw"] == 1.0 and ld[fidelity.ZERO_ROW].extra["bytes/raw"] < 1.0
    assert any(n.startswith("sensitivity:") and "the bench tells" in n for n in notes)
    assert shapes["steps"] == 12 and shapes["train clips"] == 2


def test_codec_roundtrip_bytes_by_hand():
    from p4d.bench.fidelity import PCA_ROW, ZERO_ROW, codec_roundtrip

    x = np.random.default_rng(0).standard_normal((1, 2, 2, 4, 4, 20)).astype(np.float32)
    y, nbytes, levels = codec_roundtrip("float32", x)
    assert nbytes == x.nbytes and levels == [0] and np.array_equal(y, x)
    y, nbytes, _ = codec_roundtrip("bfloat16", x)
    assert np.abs(y - x).max() <= np.abs(x).max() * 2.0 ** -8 and nbytes < x.nbytes
    y, nbytes, _ = codec_roundtrip(ZERO_ROW, x)  # channels 0 and 10 of 20 zeroed, the rest exact
    assert nbytes == x.nbytes * 18 // 20 and np.all(y[..., [0, 10]] == 0)
    assert np.array_equal(np.delete(y, [0, 10], -1), np.delete(x, [0, 10], -1))
    y, nbytes, _ = codec_roundtrip(PCA_ROW, x)  # 2 of 20 components per tap: basis + coefficients + means, float16
    assert nbytes == 2 * (2 * 20 + 32 * 2 + 20) * 2 and not np.allclose(y, x)
    with pytest.raises(ValueError, match="unknown codec row"):
        codec_roundtrip("zip", x)


def test_reach_projection_keeps_what_the_grid_can_show_and_drops_the_rest():
    """P of a 2x2 student grid on a 4x4 teacher grid (1 frame each): a constant token pattern is
    reachable (P keeps it), a checkerboard is not (bilinear upsampling of 2x2 cannot make it: P drops it)."""
    from types import SimpleNamespace

    from p4d.bench.fidelity import _project, reach_projection

    model = SimpleNamespace(cfg=SimpleNamespace(token_grid=(2, 2), d4dp_time="stride"))
    p = reach_projection(model, (1, 1, 4, 4, 3), frames=1)
    assert p.shape == (16, 16) and np.allclose(p, p.T) and np.allclose(p @ p, p)
    assert round(float(np.trace(p))) == 4  # rank: the 4 student tokens
    const = np.ones((1, 4, 4, 3))
    assert np.allclose(_project(p, const), const)
    checker = np.indices((4, 4)).sum(0) % 2 * 2.0 - 1
    board = np.repeat(checker[None, :, :, None], 3, -1)
    assert np.abs(_project(p, board)).max() < 0.5 * np.abs(board).max()


def test_map_roundtrip_of_batches_stays_within_each_maps_bound():
    """The maps row's maps: each batch's maps through quant16 and back, as a reader gets them: depth within
    0.25 % relative, flow 1/16 px, motion 1/32 logit, camray 1e-4; no clip falls back on smooth maps."""
    from p4d.bench.fidelity import MAP_CODEC, _map_roundtrip

    rng = np.random.default_rng(0)
    smooth = lambda *s: np.cumsum(rng.standard_normal(s), axis=2).astype(np.float32)  # noqa: E731
    targets = {"depth": np.exp(0.1 * smooth(2, 4, 8, 8, 1)).astype(np.float32), "flow": smooth(2, 4, 8, 8, 2),
               "motion": smooth(2, 4, 8, 8, 1), "camray": 0.1 * smooth(2, 4, 2, 2, 6)}
    batch = {"targets": {"f4d": torch.zeros(2, 1), **{k: torch.from_numpy(v) for k, v in targets.items()}}}
    (maps,), fallbacks = _map_roundtrip([batch], MAP_CODEC)
    assert fallbacks == 0 and set(maps) == set(targets)
    assert np.abs(maps["depth"].numpy() / targets["depth"] - 1).max() <= 0.0025
    for m, bound in (("flow", 1 / 16), ("motion", 1 / 32), ("camray", 1e-4)):
        err = np.abs(maps[m].numpy() - targets[m]).max()
        assert 0 < err <= bound, (m, err)
