"""Plücker rays from cameras and cameras from rays: pure torch, any leading batch dims, no OpenCV.

Conventions (L4P `utils/geometry_utils.py`, adapted from RayDiffusion; notes/l4p.md §2b):

- A ray map is (..., h, w, 6) = (d, m): unit direction d and moment m = c × d, c the camera centre.
- ``K`` (3, 3) is in pixels of an image of size ``image_hw`` = (H, W), with pixel (u, v)'s centre
  at integer coordinates (OpenCV). Ray (i, j) of an h × w grid goes through the centre of patch
  (i, j): u = (j + 0.5)·W/w − 0.5, v = (i + 0.5)·H/h − 0.5. With ``image_hw=None`` K is in grid
  units (H, W = h, w; u = j, v = i), which is what L4P's normalize/denormalize_intrinsics yield.
- ``cam_to_world`` (4, 4) maps camera to world coordinates: [R | c], d_world = R · d_cam.
- The camray head's rays are relative to the window's first camera: world = camera 0's frame.

Recovery: camera centre = least-squares intersection of the lines; rotation = Kabsch/SVD of
the rays against the ideal camera-frame rays K⁻¹·p; intrinsics = DLT homography between pixel
coordinates and ray directions (d ∝ R K⁻¹ p) followed by an RQ decomposition. Recovery runs in
float64 and returns the input's floating dtype (float32 for half types).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from p4d.errors import ConfigError

__all__ = [
    "camera_centre_from_rays",
    "camera_from_rays",
    "intrinsics_from_rays",
    "patch_centres",
    "plucker_rays",
    "pose_matrix",
    "poses_relative_to_first",
    "rays_relative_to_first",
    "rotation_from_rays",
    "rq_decomposition",
    "transform_rays",
]


def _out_dtype(t: Tensor) -> torch.dtype:
    return t.dtype if t.dtype in (torch.float32, torch.float64) else torch.float32


def _check_rays(rays: Tensor, name: str = "rays") -> None:
    if not isinstance(rays, Tensor) or rays.dim() < 3 or rays.shape[-1] != 6:
        found = tuple(rays.shape) if isinstance(rays, Tensor) else type(rays).__name__
        raise ConfigError(f"{name}: expected a ray map (..., h, w, 6), found {found}")


def _hw(name: str, value: Sequence[int] | None) -> tuple[int, int] | None:
    if value is None:
        return None
    hw = tuple(int(v) for v in value)
    if len(hw) != 2 or min(hw) <= 0:
        raise ConfigError(f"{name}: expected (height, width) > 0, found {value!r}")
    return hw  # type: ignore[return-value]


def patch_centres(
    grid_hw: Sequence[int], image_hw: Sequence[int] | None = None, *, device=None, dtype=torch.float32
) -> Tensor:
    """Homogeneous pixel coordinates (h, w, 3) = (u, v, 1) of the patch centres of an h × w grid
    over an H × W image (see the module docstring for the convention)."""
    h, w = _hw("grid_hw", grid_hw)  # type: ignore[misc]
    big_h, big_w = _hw("image_hw", image_hw) or (h, w)
    v = (torch.arange(h, device=device, dtype=dtype) + 0.5) * (big_h / h) - 0.5
    u = (torch.arange(w, device=device, dtype=dtype) + 0.5) * (big_w / w) - 0.5
    vv, uu = torch.meshgrid(v, u, indexing="ij")
    return torch.stack([uu, vv, torch.ones_like(uu)], dim=-1)


def pose_matrix(R: Tensor, c: Tensor) -> Tensor:
    """cam_to_world (..., 4, 4) from rotation R (..., 3, 3) and centre c (..., 3)."""
    batch = torch.broadcast_shapes(R.shape[:-2], c.shape[:-1])
    out = torch.zeros(*batch, 4, 4, dtype=R.dtype, device=R.device)
    out[..., :3, :3] = R
    out[..., :3, 3] = c
    out[..., 3, 3] = 1
    return out


def _split_pose(cam_to_world: Tensor | tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
    if isinstance(cam_to_world, (tuple, list)):
        R, c = cam_to_world
    else:
        if cam_to_world.shape[-2:] != (4, 4):
            raise ConfigError(
                f"cam_to_world: expected (..., 4, 4) or (R, c), found {tuple(cam_to_world.shape)}"
            )
        R, c = cam_to_world[..., :3, :3], cam_to_world[..., :3, 3]
    if R.shape[-2:] != (3, 3) or c.shape[-1] != 3:
        raise ConfigError(
            f"cam_to_world: expected R (..., 3, 3) and c (..., 3), "
            f"found {tuple(R.shape)}, {tuple(c.shape)}"
        )
    return R, c


def _camera_dirs(K: Tensor, grid_hw, image_hw) -> Tensor:
    """Unit camera-frame directions K⁻¹ p at the patch centres: (..., h, w, 3)."""
    p = patch_centres(grid_hw, image_hw, device=K.device, dtype=K.dtype)
    d = torch.einsum("...mn,hwn->...hwm", torch.linalg.inv(K), p)
    return d / d.norm(dim=-1, keepdim=True)


def plucker_rays(
    K: Tensor,
    cam_to_world: Tensor | tuple[Tensor, Tensor],
    grid_hw: Sequence[int],
    image_hw: Sequence[int] | None = None,
) -> Tensor:
    """Plücker rays (..., h, w, 6) = (d, c × d) at the patch centres of an h × w grid.

    K: (..., 3, 3) in pixels of ``image_hw`` (grid units if None); cam_to_world: (..., 4, 4) or
    (R (..., 3, 3), c (..., 3)). Directions are unit vectors in the world frame.
    """
    if K.shape[-2:] != (3, 3):
        raise ConfigError(f"K: expected (..., 3, 3), found {tuple(K.shape)}")
    R, c = _split_pose(cam_to_world)
    d_cam = _camera_dirs(K, grid_hw, image_hw)  # (...K, h, w, 3)
    d = torch.einsum("...mn,...hwn->...hwm", R, d_cam)
    c = c[..., None, None, :].expand_as(d)
    return torch.cat([d, torch.linalg.cross(c, d, dim=-1)], dim=-1)


def transform_rays(rays: Tensor, transform: Tensor) -> Tensor:
    """Apply a rigid transform x' = A x + b ((..., 4, 4), broadcast over h, w) to Plücker rays:
    d' = A d, m' = A m + b × (A d)."""
    _check_rays(rays)
    A, b = transform[..., None, None, :3, :3], transform[..., None, None, :3, 3]
    d = torch.einsum("...mn,...n->...m", A, rays[..., :3])
    m = torch.einsum("...mn,...n->...m", A, rays[..., 3:])
    return torch.cat([d, m + torch.linalg.cross(b.expand_as(d), d, dim=-1)], dim=-1)


def poses_relative_to_first(cam_to_world: Tensor) -> Tensor:
    """(..., N, 4, 4) camera-to-world poses → camera-to-(camera 0) poses, inv(T_0) · T_t."""
    if cam_to_world.dim() < 3 or cam_to_world.shape[-2:] != (4, 4):
        raise ConfigError(f"cam_to_world: expected (..., N, 4, 4), found {tuple(cam_to_world.shape)}")
    return torch.linalg.inv(cam_to_world[..., :1, :, :]) @ cam_to_world


def rays_relative_to_first(rays: Tensor, cam_to_world: Tensor) -> Tensor:
    """World-frame rays (..., N, h, w, 6) of a window with poses cam_to_world (..., N, 4, 4) →
    the same rays expressed in the first camera's frame (what the camray head predicts)."""
    _check_rays(rays)
    if rays.dim() < 4 or cam_to_world.shape[-3] != rays.shape[-4]:
        raise ConfigError(
            f"rays/cam_to_world: expected (..., N, h, w, 6) and (..., N, 4, 4) with the same N, "
            f"found {tuple(rays.shape)} and {tuple(cam_to_world.shape)}"
        )
    world_to_first = torch.linalg.inv(cam_to_world[..., :1, :, :])
    return transform_rays(rays, world_to_first)


def _unit_lines(rays: Tensor) -> tuple[Tensor, Tensor]:
    """(d̂, m / |d|) in float64, flattened over the grid: (..., h·w, 3) each."""
    _check_rays(rays)
    r = rays.to(torch.float64).flatten(-3, -2)
    n = r[..., :3].norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return r[..., :3] / n, r[..., 3:] / n


def camera_centre_from_rays(rays: Tensor) -> Tensor:
    """Least-squares intersection of the ray lines: argmin_c Σ |(I − d̂ d̂ᵀ)(c − p)|², with
    p = d̂ × m̂ the point of each line nearest the origin. (..., h, w, 6) → (..., 3)."""
    d, m = _unit_lines(rays)
    p = torch.linalg.cross(d, m, dim=-1)
    eye = torch.eye(3, dtype=d.dtype, device=d.device)
    proj = eye - d[..., :, None] * d[..., None, :]  # (..., R, 3, 3)
    A = proj.sum(dim=-3)
    b = (proj @ p[..., None]).sum(dim=-3)
    return torch.linalg.solve(A, b)[..., 0].to(_out_dtype(rays))


def _kabsch(target: Tensor, source: Tensor) -> Tensor:
    """Rotation R minimising Σ |target − R·source|² over (..., R, 3) point sets."""
    C = target.transpose(-1, -2) @ source  # Σ t sᵀ, (..., 3, 3)
    U, _, Vh = torch.linalg.svd(C)
    s = torch.sign(torch.linalg.det(U @ Vh))
    D = torch.ones(*s.shape, 3, dtype=C.dtype, device=C.device)
    D[..., 2] = s
    return (U * D[..., None, :]) @ Vh


def rotation_from_rays(rays: Tensor, K: Tensor, *, image_hw: Sequence[int] | None = None) -> Tensor:
    """Camera-to-frame rotation R (..., 3, 3) with d ≈ R·K⁻¹p, by Kabsch/SVD against the ideal
    camera-frame rays of intrinsics K (..., 3, 3) (pixels of ``image_hw``, grid units if None)."""
    d, _ = _unit_lines(rays)
    ideal = _camera_dirs(K.to(torch.float64), rays.shape[-3:-1], image_hw).flatten(-3, -2)
    return _kabsch(d, ideal).to(_out_dtype(rays))


def rq_decomposition(M: Tensor) -> tuple[Tensor, Tensor]:
    """M (..., 3, 3) = K · Q with K upper triangular with a positive diagonal and Q orthogonal
    (via QR of the row-reversed transpose)."""
    P = torch.flip(torch.eye(3, dtype=M.dtype, device=M.device), dims=[0])
    q, r = torch.linalg.qr((P @ M).transpose(-1, -2))
    K = P @ r.transpose(-1, -2) @ P
    Q = P @ q.transpose(-1, -2)
    sign = torch.sign(torch.diagonal(K, dim1=-2, dim2=-1))
    sign = torch.where(sign == 0, torch.ones_like(sign), sign)
    return K * sign[..., None, :], Q * sign[..., :, None]


def _homography_dlt(pix: Tensor, d: Tensor) -> Tensor:
    """H (..., 3, 3) with d ∝ H·pix for (..., R, 3) homogeneous pixels and directions, by the
    direct linear transform d × (H p) = 0 on Hartley-normalised pixel coordinates."""
    uv = pix[..., :2]
    mean = uv.mean(dim=-2, keepdim=True)
    scale = (2**0.5) / (uv - mean).norm(dim=-1).mean(dim=-1).clamp_min(1e-12)
    T = torch.zeros(*scale.shape, 3, 3, dtype=pix.dtype, device=pix.device)
    T[..., 0, 0] = scale
    T[..., 1, 1] = scale
    T[..., :2, 2] = -mean[..., 0, :] * scale[..., None]
    T[..., 2, 2] = 1
    p = pix @ T.transpose(-1, -2)
    a, b, c = d[..., 0:1], d[..., 1:2], d[..., 2:3]
    zero = torch.zeros_like(p)
    rows = torch.cat(
        [
            torch.cat([zero, -c * p, b * p], dim=-1),
            torch.cat([c * p, zero, -a * p], dim=-1),
            torch.cat([-b * p, a * p, zero], dim=-1),
        ],
        dim=-2,
    )  # (..., 3R, 9)
    _, _, Vh = torch.linalg.svd(rows, full_matrices=False)
    return Vh[..., -1, :].reshape(*Vh.shape[:-2], 3, 3) @ T


def intrinsics_from_rays(rays: Tensor, *, image_hw: Sequence[int] | None = None) -> Tensor:
    """Intrinsics K (..., 3, 3) (pixels of ``image_hw``, grid units if None) from a ray map
    (..., h, w, 6): DLT homography H with d ∝ H·p (H = R K⁻¹), then RQ of H⁻¹ = K Rᵀ."""
    d, _ = _unit_lines(rays)
    pix = patch_centres(rays.shape[-3:-1], image_hw, dtype=torch.float64, device=rays.device).flatten(0, 1)
    H = _homography_dlt(pix.expand(*d.shape[:-2], *pix.shape), d)
    M = torch.linalg.inv(H)
    M = M * torch.sign(torch.linalg.det(M))[..., None, None]  # det > 0 so that Q is a rotation
    K, _ = rq_decomposition(M)
    return (K / K[..., 2:3, 2:3]).to(_out_dtype(rays))


def camera_from_rays(
    rays: Tensor,
    *,
    K: Tensor | None = None,
    image_hw: Sequence[int] | None = None,
    fixed_intrinsics: bool = False,
) -> tuple[Tensor, Tensor, Tensor]:
    """(K, R, c) from rays (..., h, w, 6): K (..., 3, 3) given or estimated, camera-to-frame
    rotation R (..., 3, 3), centre c (..., 3). ``fixed_intrinsics`` (rays (..., N, h, w, 6))
    estimates one K from frame 0 and uses it for every frame, as L4P's released camray head."""
    _check_rays(rays)
    if K is None:
        if fixed_intrinsics:
            if rays.dim() < 4:
                raise ConfigError(
                    f"rays: fixed_intrinsics needs (..., N, h, w, 6), found {tuple(rays.shape)}"
                )
            K = intrinsics_from_rays(rays[..., :1, :, :, :], image_hw=image_hw)
            K = K.expand(*rays.shape[:-3], 3, 3)
        else:
            K = intrinsics_from_rays(rays, image_hw=image_hw)
    R = rotation_from_rays(rays, K, image_hw=image_hw)
    c = camera_centre_from_rays(rays)
    return K.to(R.dtype), R, c
