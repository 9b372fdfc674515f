"""The shipped tiny teacher: its weights load by default, regenerate deterministically, and its maps
match held-out synthetic scenes' analytic truth where the random teacher's do not (depth mostly through
the layout every scene shares: the 5-CPU-minute recipe learns little that is specific to one video)."""


import numpy as np
import pytest
import torch

from p4d.teacher import build_teacher, get_preset, weights_hash


def test_tiny_loads_the_shipped_weights_and_tiny_random_is_the_seeded_init():
    tiny, again = build_teacher("tiny"), build_teacher("tiny", seed=7)   # the seed does not matter
    assert get_preset("tiny").packaged_weights.is_file()
    assert weights_hash(tiny.state_dict()) == weights_hash(again.state_dict())
    assert next(tiny.parameters()).dtype == torch.float32                 # float16 on disk, float32 to run
    random = build_teacher("tiny-random", seed=0)
    assert weights_hash(random.state_dict()) != weights_hash(tiny.state_dict())
    assert get_preset("tiny-random").packaged_weights is None
    assert get_preset("tiny").latent_grid == get_preset("tiny-random").latent_grid


@pytest.fixture(scope="module")
def held_out():
    """Teacher maps and analytic truth of two scenes the teacher never saw (seeds 0 and 3: the demo's)."""
    import torch.nn.functional as F

    from p4d.video.synthetic import synthetic_clip

    preds, truths = [], []
    for name in ("tiny", "tiny-random"):
        teacher = build_teacher(name, modalities=("depth", "motion"))
        out = []
        for seed, stride in ((0, 2), (3, 3)):
            clip = synthetic_clip(range(0, 16 * stride, stride), seed=seed)
            frames = torch.from_numpy(clip["frames"]).permute(0, 3, 1, 2).float()
            frames = F.interpolate(frames, size=(112, 112), mode="bilinear", antialias=True).round().clamp(0, 255)
            with torch.no_grad():
                maps = teacher(frames.permute(0, 2, 3, 1).to(torch.uint8)[None])
            out.append({k: maps[k][0].numpy() for k in ("depth", "motion")})
            if name == "tiny":
                small = lambda a: F.interpolate(torch.from_numpy(a).permute(0, 3, 1, 2), size=(112, 112),  # noqa: E731
                                                mode="bilinear", antialias=True).permute(0, 2, 3, 1).numpy()
                truths.append({"depth": small(clip["depth"]), "motion": small(clip["motion"])})
        preds.append(out)
    return preds, truths


def _corr(a, b):
    return float(np.corrcoef(np.ravel(a), np.ravel(b))[0, 1])


@pytest.mark.slow
def test_trained_maps_match_the_truth_and_random_ones_do_not(held_out):
    """Measured with the shipped file: depth r 0.75 / 0.75 (random -0.07), motion r 0.27 / 0.27 (random 0.04)."""
    (trained, random), truths = held_out
    for got, rnd, truth in zip(trained, random, truths):
        r_depth = _corr(np.log(got["depth"]), np.log(truth["depth"]))
        r_motion = _corr(got["motion"], truth["motion"])
        assert r_depth > 0.6 and r_motion > 0.2, (r_depth, r_motion)
        assert abs(_corr(np.log(rnd["depth"]), np.log(truth["depth"]))) < 0.2
        assert abs(_corr(rnd["motion"], truth["motion"])) < 0.1


@pytest.mark.slow
def test_regeneration_is_deterministic(tmp_path):
    """Two short runs of the training script give the same bytes (the full run is the same code, longer)."""
    import subprocess
    import sys

    from safetensors.torch import load_file

    def regenerate(out):  # as a user regenerates the file: the script, in a process of its own
        subprocess.run([sys.executable, "-m", "p4d.teacher.train_tiny", "--steps", "2", "--out", str(out)],
                       check=True, capture_output=True)
        return load_file(str(out))

    # every tensor bit for bit (the file's bytes are not: safetensors writes its metadata keys in no fixed order)
    a, b = regenerate(tmp_path / "a.safetensors"), regenerate(tmp_path / "b.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    again = build_teacher("tiny", weights=tmp_path / "a.safetensors")
    assert weights_hash(again.state_dict()) != weights_hash(build_teacher("tiny").state_dict())  # 2 steps != shipped
