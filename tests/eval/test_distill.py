"""`p4d eval distill`: metrics by hand, then the command on a real tiny store and a real 2-checkpoint run."""

from __future__ import annotations

import json

import numpy as np
import pytest

from p4d.errors import ConfigError
from p4d.eval.distill import BASELINE, ResidualFit, score_row, silog, token_cosine


def test_residual_fit_by_hand():
    rng = np.random.default_rng(0)
    target, mean = rng.normal(size=1000), rng.normal(size=1000)
    exact, blind, half = ResidualFit(), ResidualFit(), ResidualFit()
    exact.add(target, target, mean)
    blind.add(mean, target, mean)
    half.add(mean + 0.5 * (target - mean), target, mean)   # right direction, half the size
    assert exact.r2 == pytest.approx(1.0) and exact.r == pytest.approx(1.0)
    assert blind.r2 == 0.0 and blind.r == 0.0
    assert half.r2 == pytest.approx(0.75) and half.r == pytest.approx(1.0)
    anti = ResidualFit()
    anti.add(mean - (target - mean), target, mean)          # residual mirrored: r = -1, SSE = 4 x baseline
    assert anti.r == pytest.approx(-1.0) and anti.r2 == pytest.approx(-3.0)


def test_token_cosine_and_silog_by_hand():
    a = np.zeros((1, 1, 1, 2, 2))
    a[..., 0, :] = [1, 0]
    a[..., 1, :] = [1, 1]
    b = np.zeros_like(a)
    b[..., 0, :] = [0, 1]      # cos 0
    b[..., 1, :] = [2, 2]      # cos 1
    assert token_cosine(b, a) == pytest.approx(0.5)
    d = np.array([1.0, 2.0, 4.0])
    assert silog(3 * d, d) == pytest.approx(0.0, abs=1e-12)                 # scale-invariant
    g = np.log(np.array([2.0, 2.0, 8.0]) / d)                              # log ratios 0.69, 0, 0.69
    assert silog(np.array([2.0, 2.0, 8.0]), d) == pytest.approx(np.sqrt(np.mean(g ** 2) - np.mean(g) ** 2))


def _maps(rng, scale=1.0):
    return {"f4d": rng.normal(size=(2, 2, 2, 2, 8)) * scale,
            "depth": np.exp(rng.normal(size=(4, 6, 6, 1))), "flow": rng.normal(size=(4, 6, 6, 2)) * 3,
            "motion": rng.normal(size=(4, 6, 6, 1)) * 4, "camray": rng.normal(size=(4, 2, 2, 6))}


def test_score_row_perfect_student_and_blind_baseline():
    rng = np.random.default_rng(1)
    targets = [_maps(rng) for _ in range(3)]
    means = {k: np.mean([t[k] for t in targets], axis=0) for k in targets[0]}
    perfect = score_row("student", 5, ((t, t) for t in targets), means)
    blind = score_row(BASELINE, None, ((means, t) for t in targets), means)
    assert perfect["f4d_cos"] == pytest.approx(1.0)
    for key in ("f4d", "depth", "flow", "motion", "camray"):
        assert perfect[f"{key}_r"] == pytest.approx(1.0) and perfect[f"{key}_r2"] == pytest.approx(1.0)
        assert blind[f"{key}_r"] == 0.0 and blind[f"{key}_r2"] == pytest.approx(0.0)
    assert perfect["depth_abs_rel"] == 0 and perfect["depth_silog"] == pytest.approx(0, abs=1e-7)
    assert perfect["flow_epe"] == 0 and perfect["motion_iou"] == 1 and perfect["camray_dir_deg"] == pytest.approx(0, abs=1e-4)
    assert blind["flow_epe"] > 1 and blind["depth_abs_rel"] > 0.1


# --- the command on a real store and a real run (slow) -----------------------------------------


@pytest.fixture(scope="module")
def store_and_run(tmp_path_factory):
    from p4d.precompute.config import PrecomputeConfig
    from p4d.precompute.job import run_precompute
    from p4d.train.config import resolve_config
    from p4d.train.trainer import main as train_main
    from p4d.video import write_synthetic_video

    root = tmp_path_factory.mktemp("distill")
    for i in range(3):
        write_synthetic_video(root / f"v{i}.mp4", num_frames=34, fps=12, size=(96, 64), seed=i)
    store = root / "cache.zarr"
    run_precompute(PrecomputeConfig(videos=str(root), store=str(store), teacher="tiny", policy="stride",
                                    clips_per_shard=2, batch_size=2, workers=1, device="cpu", progress=False,
                                    student_size=56))  # the tiny student's S: `p4d train` checks it
    turns = [{"from": "human", "value": "<video>\nWhich way?\nA. left\nB. right"}, {"from": "gpt", "value": "A"}]
    conv = root / "conv.jsonl"
    conv.write_text("".join(json.dumps({"id": f"r{i}", "video": f"v{i}.mp4", "conversations": turns}) + "\n"
                            for i in range(2)))
    out = root / "run"
    train_main(resolve_config(overrides={
        "out": str(out), "data": {"conversations": str(conv), "cache": str(store), "batch_size": 2},
        "model": {"preset": "tiny"}, "optim": {"max_steps": 2, "warmup_steps": 1},
        "log": {"progress": False, "tensorboard": False}, "checkpoint": {"export": False, "every": 1}}))
    return store, out


@pytest.mark.slow
def test_eval_distill_command_curve_and_json(store_and_run, tmp_path):
    from typer.testing import CliRunner

    from p4d.cache_schema import open_store
    from p4d.cli import app

    store, run = store_and_run
    assert open_store(str(store)).status()["done"] == 6  # 2 clips per video under --policy stride
    res = CliRunner().invoke(app, ["eval", "distill", str(store), "--model", str(run), "--clips", "4-5",
                                   "--steps", "all", "--out", str(tmp_path / "d.json"), "--device", "cpu"])
    assert res.exit_code == 0, res.output
    rows = json.loads((tmp_path / "d.json").read_text())
    assert rows["clips"] == [4, 5] and rows["baseline_clips"] == [0, 1, 2, 3] and not rows["baseline_in_sample"]
    assert [(r["name"], r["step"]) for r in rows["rows"]] == [(BASELINE, None), ("student", 1), ("student", 2)]
    base = rows["rows"][0]
    assert all(base[f"{k}_r2"] == 0 and base[f"{k}_r"] == 0 for k in ("f4d", "depth", "flow", "motion", "camray"))
    assert "| video-blind (train mean) |" in res.output and "| student | 2 |" in res.output
    bad = CliRunner().invoke(app, ["eval", "distill", str(store), "--model", str(run), "--clips", "40"])
    assert bad.exit_code != 0 and "--clips: clips [40] are not done" in str(bad.exception)


@pytest.mark.slow
def test_a_student_predicting_the_teachers_f4d_scores_perfectly(store_and_run, monkeypatch):
    """End to end through the store's heads: F̂_4D = the cached F_4D gives cos 1 and residual r ~ 1 on
    every map (the fp16 maps and the heads' float32 output differ only by rounding)."""
    import p4d.inspect.compare as compare
    from p4d.cache_schema import open_store, read_clip
    from p4d.eval.distill import DistillConfig, run_distill

    store, run = store_and_run
    opened = open_store(str(store))
    by_frames = {read_clip(opened, c)["frame_index"].tobytes(): read_clip(opened, c)["f4d"] for c in (4, 5)}

    class Oracle:
        url, steps = "oracle", [7]

        def predictor(self, step=None):
            from p4d.inspect.clipdata import load_clip

            table = {load_clip(opened, c).frames.tobytes(): by_frames[read_clip(opened, c)["frame_index"].tobytes()]
                     for c in (4, 5)}
            return lambda frames, timestamps: table[frames.tobytes()]

    monkeypatch.setattr(compare, "open_run", lambda *a, **k: Oracle())
    result = run_distill(DistillConfig(store=str(store), run="oracle", clips="4,5", device="cpu"))
    student = result.rows[1]
    assert student["f4d_cos"] == pytest.approx(1.0) and student["f4d_r"] == pytest.approx(1.0)
    for m in ("depth", "flow", "motion", "camray"):
        assert student[f"{m}_r"] > 0.99, (m, student[f"{m}_r"])
    with pytest.raises(ConfigError, match=r"--steps: run oracle has no checkpoints at steps \[3\]"):
        run_distill(DistillConfig(store=str(store), run="oracle", clips="4,5", steps="3", device="cpu"))
