"""Plücker rays and camera recovery against a synthetic camera with known K, R, c."""

import math

import numpy as np
import pytest
import torch

from p4d.errors import ConfigError
from p4d.heads.geometry import (
    camera_centre_from_rays,
    camera_from_rays,
    intrinsics_from_rays,
    plucker_rays,
    pose_matrix,
    poses_relative_to_first,
    rays_relative_to_first,
    rotation_from_rays,
    rq_decomposition,
)

IMAGE = (224, 224)
GRID = (16, 16)


def rotation(axis, angle_deg):
    """Rodrigues' formula, written out in numpy."""
    a = np.asarray(axis, float) / np.linalg.norm(axis)
    t = math.radians(angle_deg)
    k = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    return np.eye(3) + math.sin(t) * k + (1 - math.cos(t)) * k @ k


K_TRUE = np.array([[200.0, 0.0, 110.0], [0.0, 185.0, 116.0], [0.0, 0.0, 1.0]])
R_TRUE = rotation([0.3, -1.0, 0.2], 25.0)
C_TRUE = np.array([0.4, -0.25, 1.7])


def t64(x):
    return torch.tensor(x, dtype=torch.float64)


def synthetic_rays(K=K_TRUE, R=R_TRUE, c=C_TRUE):
    return plucker_rays(t64(K), (t64(R), t64(c)), GRID, IMAGE)


def test_ray_invariants_and_moment_is_c_cross_d():
    rays = synthetic_rays().numpy()
    assert rays.shape == (16, 16, 6)
    d, m = rays[..., :3], rays[..., 3:]
    np.testing.assert_allclose(np.linalg.norm(d, axis=-1), 1.0, atol=1e-12)
    np.testing.assert_allclose((d * m).sum(-1), 0.0, atol=1e-12)
    np.testing.assert_allclose(m, np.cross(np.broadcast_to(C_TRUE, d.shape), d), atol=1e-12)


def test_rays_project_back_to_patch_centres():
    """A point along ray (i, j) projects through (K, R, c) onto patch (i, j)'s centre in the
    224-px image, pixel centres at integers: u = 14 j + 6.5, v = 14 i + 6.5."""
    rays = synthetic_rays().numpy()
    X = C_TRUE + 3.3 * rays[..., :3]  # world points on the rays
    x_cam = (X - C_TRUE) @ R_TRUE  # R^T (X - c), row-vector form
    uvw = x_cam @ K_TRUE.T
    uv = uvw[..., :2] / uvw[..., 2:]
    i, j = np.meshgrid(np.arange(16), np.arange(16), indexing="ij")
    np.testing.assert_allclose(uv[..., 0], 14 * j + 6.5, atol=1e-9)
    np.testing.assert_allclose(uv[..., 1], 14 * i + 6.5, atol=1e-9)


def test_l4p_grid_intrinsics_convention_gives_the_same_rays():
    """L4P denormalize(normalize(K, 224), 16): f·16/224, (c + 0.5)·16/224 − 0.5, grid units."""
    s = 16 / 224
    Kg = K_TRUE.copy()
    Kg[0, 0] *= s
    Kg[1, 1] *= s
    Kg[0, 2] = (K_TRUE[0, 2] + 0.5) * s - 0.5
    Kg[1, 2] = (K_TRUE[1, 2] + 0.5) * s - 0.5
    grid_rays = plucker_rays(t64(Kg), pose_matrix(t64(R_TRUE), t64(C_TRUE)), GRID)
    torch.testing.assert_close(grid_rays, synthetic_rays(), rtol=0, atol=1e-12)


def test_recovery_noise_free():
    rays = synthetic_rays()
    K, R, c = camera_from_rays(rays, image_hw=IMAGE)
    np.testing.assert_allclose(c.numpy(), C_TRUE, atol=1e-9)
    np.testing.assert_allclose(R.numpy(), R_TRUE, atol=1e-9)
    np.testing.assert_allclose(K.numpy(), K_TRUE, rtol=1e-9, atol=1e-7)
    # Rotation from rays with the true K, and K in grid units when image_hw is omitted.
    np.testing.assert_allclose(rotation_from_rays(rays, t64(K_TRUE), image_hw=IMAGE).numpy(), R_TRUE, atol=1e-9)
    Kg = intrinsics_from_rays(rays).numpy()
    np.testing.assert_allclose(Kg[0, 0], K_TRUE[0, 0] * 16 / 224, rtol=1e-9)


def test_recovery_with_noise_float32():
    gen = torch.Generator().manual_seed(0)
    rays = synthetic_rays()
    noisy = (rays + 2e-3 * torch.randn(rays.shape, generator=gen, dtype=torch.float64)).float()
    K, R, c = camera_from_rays(noisy, image_hw=IMAGE)
    assert K.dtype == R.dtype == c.dtype == torch.float32
    np.testing.assert_allclose(c.double().numpy(), C_TRUE, atol=5e-3)
    cos = (np.trace(R.double().numpy().T @ R_TRUE) - 1) / 2
    assert math.degrees(math.acos(min(1.0, cos))) < 0.3
    np.testing.assert_allclose(K.double().numpy(), K_TRUE, rtol=0.01, atol=1.0)


def test_batched_relative_to_first_camera():
    """Two windows of 3 frames: rays relative to frame 0 recover the relative poses
    R0ᵀ R_t and R0ᵀ (c_t − c0), and frame 0's rays become camera-frame rays through the origin."""
    Rs = np.stack([[rotation([0, 1, 0], 5 * t + 30 * b) @ R_TRUE for t in range(3)] for b in range(2)])
    cs = np.stack([[C_TRUE + [0.1 * t, -0.05 * t * b, 0.02 * t] for t in range(3)] for b in range(2)])
    K = t64(K_TRUE).expand(2, 3, 3, 3)
    world = plucker_rays(K, (t64(Rs), t64(cs)), GRID, IMAGE)
    assert world.shape == (2, 3, 16, 16, 6)
    # one K broadcast over the batch gives the same rays; each item equals its own rendering
    torch.testing.assert_close(plucker_rays(t64(K_TRUE), (t64(Rs), t64(cs)), GRID, IMAGE), world)
    torch.testing.assert_close(world[1, 2], plucker_rays(t64(K_TRUE), (t64(Rs[1, 2]), t64(cs[1, 2])), GRID, IMAGE))
    c2w = pose_matrix(t64(Rs), t64(cs))
    rel = rays_relative_to_first(world, c2w)
    rel_pose = poses_relative_to_first(c2w)
    # same as rendering directly with the relative poses
    torch.testing.assert_close(rel, plucker_rays(K, rel_pose, GRID, IMAGE), rtol=0, atol=1e-12)
    np.testing.assert_allclose(rel[:, 0, ..., 3:].numpy(), 0.0, atol=1e-12)
    K_est, R_est, c_est = camera_from_rays(rel, image_hw=IMAGE, fixed_intrinsics=True)
    for b in range(2):
        for t in range(3):
            np.testing.assert_allclose(R_est[b, t].numpy(), Rs[b, 0].T @ Rs[b, t], atol=1e-9)
            np.testing.assert_allclose(c_est[b, t].numpy(), Rs[b, 0].T @ (cs[b, t] - cs[b, 0]), atol=1e-9)
            np.testing.assert_allclose(K_est[b, t].numpy(), K_TRUE, rtol=1e-8, atol=1e-6)


def test_centre_accepts_unnormalised_directions():
    rays = synthetic_rays()
    scale = torch.linspace(0.5, 3.0, 256, dtype=torch.float64).reshape(16, 16, 1)
    np.testing.assert_allclose(camera_centre_from_rays(rays * scale).numpy(), C_TRUE, atol=1e-9)


def test_rq_decomposition():
    M = t64(K_TRUE @ R_TRUE.T * 3.0)
    K, Q = rq_decomposition(M)
    torch.testing.assert_close(K @ Q, M)
    assert torch.allclose(torch.tril(K, -1), torch.zeros(3, 3, dtype=torch.float64))
    assert (torch.diagonal(K) > 0).all()
    torch.testing.assert_close(Q @ Q.T, torch.eye(3, dtype=torch.float64))
    np.testing.assert_allclose(Q.numpy(), R_TRUE.T, atol=1e-12)


def test_bad_ray_map_is_an_error():
    with pytest.raises(ConfigError, match=r"rays: expected a ray map"):
        camera_centre_from_rays(torch.zeros(16, 16, 3))
