import math

import pytest
import torch

from p4d.train.model import camray_loss, depth_loss, flow_loss, latent_loss, motion_loss, sft_loss
from p4d.train.model.config import LossConfig
from p4d.train.model.losses import DEPTH_EPS

g = torch.Generator().manual_seed(3)
F4D = torch.randn(2, 4, 2, 2, 2, 16, generator=g)
DEPTH = torch.rand(2, 4, 6, 6, 1, generator=g) * 10 + 0.5
FLOW = torch.randn(2, 4, 6, 6, 2, generator=g) * 5
MOTION = torch.randn(2, 4, 6, 6, 1, generator=g)
CAMRAY = torch.randn(2, 4, 2, 2, 6, generator=g)
NOISE = {k: torch.randn(v.shape, generator=g) for k, v in dict(f4d=F4D, depth=DEPTH, flow=FLOW, motion=MOTION, camray=CAMRAY).items()}

CASES = [
    ("ld-mse", lambda p, t: latent_loss(p, t, "mse"), F4D, "f4d"),
    ("ld-smooth_l1", lambda p, t: latent_loss(p, t, "smooth_l1"), F4D, "f4d"),
    ("ld-cosine", lambda p, t: latent_loss(p, t, "cosine"), F4D, "f4d"),
    ("depth-log_mse", lambda p, t: depth_loss(p, t.exp(), "log_mse"), DEPTH.log(), "depth"),
    ("depth-ssi", lambda p, t: depth_loss(p, t.exp(), "ssi"), DEPTH.log(), "depth"),
    ("flow-mse", lambda p, t: flow_loss(p, t, "mse"), FLOW, "flow"),
    ("flow-epe", lambda p, t: flow_loss(p, t, "epe"), FLOW, "flow"),
    ("motion-mse", lambda p, t: motion_loss(p, t, "mse"), MOTION, "motion"),
    ("motion-bce", lambda p, t: motion_loss(p, t, "bce"), MOTION, "motion"),
    ("camray-mse", lambda p, t: camray_loss(p, t, "mse"), CAMRAY, "camray"),
    ("camray-smooth_l1", lambda p, t: camray_loss(p, t, "smooth_l1"), CAMRAY, "camray"),
]


@pytest.mark.parametrize("name, fn, target, key", CASES, ids=[c[0] for c in CASES])
def test_zero_at_equality_and_growing_with_perturbation(name, fn, target, key):
    # for depth the prediction is log-depth and the target the cached depth (fn exps it back)
    assert float(fn(target.clone(), target)) == pytest.approx(0.0, abs=1e-5)
    values = [float(fn(target + s * NOISE[key], target)) for s in (0.05, 0.2, 0.8)]
    assert 0 < values[0] < values[1] < values[2], values


def test_hand_values():
    # constant offset 0.5 → MSE 0.25; log-depth offset δ → δ²; flow offset (3, 4) → EPE 5
    assert float(latent_loss(F4D + 0.5, F4D)) == pytest.approx(0.25, rel=1e-5)
    assert float(depth_loss(DEPTH.log() + 0.3, DEPTH)) == pytest.approx(0.09, rel=1e-4)
    offset = torch.tensor([3.0, 4.0])
    assert float(flow_loss(FLOW + offset, FLOW, "epe")) == pytest.approx(5.0, rel=1e-5)
    assert float(flow_loss(FLOW + offset, FLOW, "mse")) == pytest.approx(12.5, rel=1e-5)  # (9 + 16) / 2
    # cosine ignores the scale; SSI ignores a per-frame scale and shift of log-depth
    assert float(latent_loss(3.0 * F4D, F4D, "cosine")) == pytest.approx(0.0, abs=1e-6)
    assert float(depth_loss(2.0 * DEPTH.log() - 1.0, DEPTH, "ssi")) == pytest.approx(0.0, abs=1e-8)


def test_flow_loss_ignores_frame_zero():
    pred = FLOW.clone()
    pred[:, 0] += 100.0
    assert float(flow_loss(pred, FLOW)) == 0.0
    assert float(flow_loss(pred, FLOW, "epe")) == pytest.approx(0.0, abs=1e-5)
    pred[:, 1] += 1.0
    assert float(flow_loss(pred, FLOW)) == pytest.approx(1.0 / 3.0, rel=1e-5)  # frames 1..3, one off by 1


def test_sft_is_cross_entropy_on_answer_tokens_only():
    # identity "lm_head": hidden states are the logits. Position 0 → label 1 (ln 2 for two equal
    # logits); position 1 → label 0 with logits (ln 3, 0) → −log(3/4); the other labels are −100.
    hidden = torch.tensor([[[0.0, 0.0], [math.log(3.0), 0.0], [5.0, -5.0], [0.0, 9.0]]])
    labels = torch.tensor([[-100, 1, 0, -100]])
    want = (math.log(2.0) - math.log(0.75)) / 2
    assert float(sft_loss(hidden, labels, lambda h: h)) == pytest.approx(want, rel=1e-6)
    assert float(sft_loss(hidden, torch.full_like(labels, -100), lambda h: h)) == 0.0


def test_shape_mismatch_names_the_target():
    with pytest.raises(ValueError, match=r"targets\['flow'\]"):
        flow_loss(FLOW, FLOW[:, :3])


def test_release_defaults():
    cfg = LossConfig()
    assert (cfg.ld_weight, cfg.weight("depth"), cfg.weight("flow"), cfg.weight("motion"), cfg.weight("camray")) == (
        0.01, 0.1, 0.001, 0.01, 1e-5)
    assert cfg.log_all
    with pytest.raises(ValueError, match="LossConfig.flow"):
        LossConfig(flow="l1")


def test_depth_is_compared_as_log_of_depth_plus_eps_on_both_sides():
    # the release: (log(d_hat + 1e-8) - log(d + 1e-8))^2; the head gives log d_hat
    assert DEPTH_EPS == 1e-8
    d_hat = torch.tensor([1e-8, 2.0, 0.0]).view(1, 1, 1, 3, 1)
    d = torch.tensor([3e-8, 2.0, 1e-8]).view(1, 1, 1, 3, 1)
    want = ((math.log(2e-8) - math.log(4e-8)) ** 2 + 0.0 + (math.log(1e-8) - math.log(2e-8)) ** 2) / 3
    got = float(depth_loss(torch.log(d_hat), d))  # log 0 = -inf: d_hat 0 still gives log(1e-8)
    assert got == pytest.approx(want, rel=1e-5)
    # a zero cached depth (float16 underflow) gives a finite target
    assert math.isfinite(float(depth_loss(torch.zeros(1, 1, 1, 1, 1), torch.zeros(1, 1, 1, 1, 1))))
    # a huge log-depth does not overflow
    assert math.isfinite(float(depth_loss(torch.full((1, 1, 1, 1, 1), 1000.0), torch.ones(1, 1, 1, 1, 1))))
