"""`p4d bench fidelity`: the table has its rows, and training twice on the exact targets gives the
same losses bit for bit (so a codec row's delta is the codec's, not run-to-run noise)."""

from __future__ import annotations

import math

import numpy as np
import pytest

pytestmark = pytest.mark.slow


def test_fidelity_bench_rows_and_exact_vs_exact_deltas_are_zero(monkeypatch):
    from p4d.bench import fidelity

    monkeypatch.setattr(fidelity, "SIZES", {"tiny": (2, 2, 2)})  # 1 train batch, 1 held-out batch, 2 steps
    result = fidelity.run("tiny")
    rows = {r.entry: r for r in result.rows}
    for name in fidelity.TRAIN_ROWS:
        for what in ("LD", "ED"):
            assert f"{name}: held-out {what} after 2 steps vs float32 targets" in rows
    for source in ("independent", "correlated"):
        for codec in ("bfloat16", "dpcm-channel", "dpcm 0.5xRMS", "pca 12/64"):
            assert f"{source} latents, {codec}" in rows
    for what in ("LD", "ED"):
        rerun = rows[f"float32 (rerun): held-out {what} after 2 steps vs float32 targets"]
        assert rerun.candidate == rerun.baseline and rerun.ratio == 1.0 and math.isfinite(rerun.candidate)
    exact = rows["float32: held-out LD after 2 steps vs float32 targets"].extra
    again = rows["float32 (rerun): held-out LD after 2 steps vs float32 targets"].extra
    assert exact["train LD"] == again["train LD"] and exact["bytes/raw"] == 1.0
    dpcm = rows["dpcm-channel: held-out LD after 2 steps vs float32 targets"].extra
    assert 0.99 < dpcm["channel R2 mean"] < 1.0 and 0.05 < dpcm["bytes/raw"] < 0.3
    coarse = rows["dpcm 0.5xRMS: held-out LD after 2 steps vs float32 targets"].extra
    assert coarse["channel R2 mean"] == pytest.approx(1 - 0.5 ** 2 / 12, abs=3e-3) and coarse["bytes/raw"] < dpcm["bytes/raw"]
    assert "bench sensitive (zeros control off by > 1 %)" in rows["dpcm-channel: held-out LD after 2 steps vs float32 targets"].checks
    assert any(n.startswith("sensitivity: training on all-zero F_4D targets") for n in result.notes)


def test_codec_roundtrip_bytes_by_hand():
    from p4d.bench.fidelity import codec_roundtrip

    x = np.random.default_rng(0).standard_normal((1, 2, 2, 4, 4, 8)).astype(np.float32)
    y, nbytes, levels = codec_roundtrip("float32", x)
    assert nbytes == x.nbytes and levels == [0] and np.array_equal(y, x)
    y, nbytes, _ = codec_roundtrip("bfloat16", x)
    assert np.abs(y - x).max() <= np.abs(x).max() * 2.0 ** -8 and nbytes < x.nbytes
    with pytest.raises(ValueError, match="unknown codec row"):
        codec_roundtrip("zip", x)
