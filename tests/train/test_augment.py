"""Flip replay on the cached maps (against the geometry of a mirrored camera) and its refusals."""

import numpy as np
import pytest
import torch

from p4d.errors import ConfigError
from p4d.heads.geometry import plucker_rays
from p4d.train.augment import flip_map, flip_region, flip_targets, should_flip


def _rotation(axis, angle):
    axis = torch.tensor(axis, dtype=torch.float64)
    axis = axis / axis.norm()
    k = torch.tensor([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]], dtype=torch.float64)
    return torch.eye(3, dtype=torch.float64) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k


def test_flipped_rays_equal_the_mirrored_camera():
    """Image flip u -> W-1-u of a camera with a centred principal point = the camera mirrored by
    S = diag(-1, 1, 1) in camera-0 (world) coordinates: R' = S R S, c' = S c, same K."""
    height, width, grid = 48, 64, (6, 8)
    K = torch.tensor([[50.0, 0, (width - 1) / 2], [0, 55.0, (height - 1) / 2], [0, 0, 1]], dtype=torch.float64)
    S = torch.diag(torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64))
    Rs = torch.stack([torch.eye(3, dtype=torch.float64), _rotation([0.3, 1, 0.2], 0.4), _rotation([1, -0.5, 0.1], -0.7)])
    cs = torch.tensor([[0.0, 0, 0], [0.4, -0.2, 0.3], [-1.0, 0.5, 0.8]], dtype=torch.float64)
    rays = plucker_rays(K, (Rs, cs), grid, (height, width))                       # (N, h, w, 6)
    mirrored = plucker_rays(K, (S @ Rs @ S, cs @ S), grid, (height, width))

    replayed = flip_map("camray", rays.numpy().astype(np.float32))
    np.testing.assert_allclose(replayed, mirrored.numpy(), atol=1e-5)
    assert not np.allclose(rays.numpy(), mirrored.numpy(), atol=1e-3)  # the flip is not a no-op here


def test_maps_mirror_and_flow_x_negates():
    depth = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4, 1)
    flow = np.stack([np.full((2, 3, 4), 1.5), np.full((2, 3, 4), -2.0)], -1).astype(np.float32)
    flow[0, 1, 0] = (4.0, 7.0)
    out = flip_targets({"depth": depth, "motion": depth, "flow": flow})
    assert out["depth"][1, 2, 0, 0] == depth[1, 2, 3, 0] and out["depth"][0, 0, 3, 0] == depth[0, 0, 0, 0]
    np.testing.assert_array_equal(out["motion"], depth[:, :, ::-1])
    assert tuple(out["flow"][0, 1, 3]) == (-4.0, 7.0)          # column 0 moved to column 3, x negated
    assert tuple(out["flow"][1, 2, 2]) == (-1.5, -2.0)
    # flipping twice is the identity
    back = flip_targets(out)
    np.testing.assert_array_equal(back["flow"], flow)


def test_f4d_and_unknown_targets_refused():
    with pytest.raises(ConfigError, match="F_4D does not mirror"):
        flip_targets({"f4d": np.zeros((1, 1, 1, 1, 1))})
    with pytest.raises(ConfigError, match="no flip rule"):
        flip_map("normals", np.zeros((1, 1, 1, 3)))


def test_region_boxes_mirror():
    assert flip_region({"label": "obj_1", "box": [10, 5, 30, 25]}, width=100)["box"] == [70, 5, 90, 25]


def test_flip_decision_is_a_function_of_seed_epoch_index():
    draws = [should_flip(0.5, 3, e, i) for e in range(4) for i in range(50)]
    assert draws == [should_flip(0.5, 3, e, i) for e in range(4) for i in range(50)]
    assert 60 < sum(draws) < 140                       # about half of 200
    assert not any(should_flip(0.0, 3, 0, i) for i in range(50))
    assert all(should_flip(1.0, 3, 0, i) for i in range(50))
