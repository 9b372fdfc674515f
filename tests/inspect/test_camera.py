"""Camera trajectory/frustums recovered from Plücker rays built from known cameras."""

import numpy as np
import pytest
import torch

from p4d.errors import ConfigError
from p4d.inspect.camera import Trajectory, frustum_scale, render_camera_plot, trajectory_from_rays


def _known_rays(n=6):
    """Rays (n, 8, 8, 6) of cameras yawing about y while moving along x/z; K in grid units."""
    from p4d.heads.geometry import plucker_rays

    angles = np.linspace(0, 0.5, n)
    R = np.stack([[[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]] for a in angles])
    c = np.stack([[0.4 * t, 0.0, 0.1 * t] for t in np.linspace(0, 1, n)])
    K = torch.tensor([[7.0, 0, 3.5], [0, 7.0, 3.5], [0, 0, 1]], dtype=torch.float64)
    rays = plucker_rays(K.expand(n, 3, 3), (torch.from_numpy(R), torch.from_numpy(c)), (8, 8))
    return rays.numpy(), K.numpy(), R, c


def test_trajectory_recovers_the_cameras():
    rays, K, R, c = _known_rays()
    traj = trajectory_from_rays(rays)
    np.testing.assert_allclose(traj.centres, c, atol=1e-6)
    np.testing.assert_allclose(traj.R, R, atol=1e-6)
    np.testing.assert_allclose(traj.K, K, atol=1e-6)
    assert traj.grid_hw == (8, 8)
    assert frustum_scale(traj) == pytest.approx(0.2 * 0.4)


def test_frustum_corners_of_an_identity_camera():
    """K = [[2, 0, 1.5], [0, 2, 0.5], [0, 0, 1]] on a 2 x 4 grid: corner pixel (-0.5, -0.5) maps to
    ((-0.5 - 1.5) / 2, (-0.5 - 0.5) / 2, 1) = (-1, -0.5, 1), etc.; scale 2, centre (1, 0, 0)."""
    traj = Trajectory(K=np.array([[2.0, 0, 1.5], [0, 2.0, 0.5], [0, 0, 1]]), R=np.eye(3)[None],
                      centres=np.array([[1.0, 0, 0]]), grid_hw=(2, 4))
    corners = traj.frustum_corners(2.0)[0]
    want = np.array([[-1, -0.5, 1], [1, -0.5, 1], [1, 0.5, 1], [-1, 0.5, 1]]) * 2 + [1, 0, 0]
    np.testing.assert_allclose(corners, want)


def test_plot_has_the_requested_size():
    rays, *_ = _known_rays()
    img = render_camera_plot(rays, (120, 160), highlight=2)
    assert img.shape == (120, 160, 3) and img.dtype == np.uint8
    assert (img != 255).any()


def test_degenerate_rays_give_an_error_and_a_notice_plot():
    rays = np.zeros((4, 8, 8, 6))
    with pytest.raises(ConfigError, match="camray"):
        trajectory_from_rays(rays)
    img = render_camera_plot(rays, (80, 80))
    assert img.shape == (80, 80, 3)


def test_bad_ray_shape():
    with pytest.raises(ConfigError, match=r"\(N, h_p, w_p, 6\)"):
        trajectory_from_rays(np.zeros((8, 8, 6)))


def test_renderer_highlights_one_camera_in_red():
    from p4d.inspect.camera import camera_plot_renderer

    rays, *_ = _known_rays()
    render = camera_plot_renderer(rays, (160, 160), title="")
    plain, marked = render(None).astype(int), render(2).astype(int)
    red = lambda img: ((img[..., 0] > 200) & (img[..., 1] < 60) & (img[..., 2] < 60)).sum()  # noqa: E731
    assert red(plain) == 0 and red(marked) > 20
    np.testing.assert_array_equal(render(None), plain)  # un-highlighting restores the plot


@pytest.mark.parametrize("offset, spread", [((0.0, 0.0, 0.0), 1.0), ((12.3456, -3.5, 40.0), 0.02), ((-250.0, 8.0, 0.5), 30.0)])
def test_tick_labels_are_distinct_short_and_inside_the_plot(offset, spread):
    """Each axis: three ticks whose labels differ (a small path far from the origin used to print "12", "12",
    "12"), at most 8 characters; the axes with their tick labels fit inside the figure at the pictures' size."""
    from p4d.heads.geometry import plucker_rays
    from p4d.inspect.camera import camera_plot_renderer

    n = 5
    R = np.repeat(np.eye(3)[None], n, 0)
    c = np.asarray(offset) + spread * np.stack([[t, 0.3 * t, 0.5 * t] for t in np.linspace(0, 1, n)])
    K = torch.tensor([[7.0, 0, 3.5], [0, 7.0, 3.5], [0, 0, 1]], dtype=torch.float64)
    rays = plucker_rays(K.expand(n, 3, 3), (torch.from_numpy(R), torch.from_numpy(c)), (8, 8)).numpy()
    from p4d.inspect.panels import CAMERA_PLOT_SIZE

    size = CAMERA_PLOT_SIZE  # the size the pictures use
    render = camera_plot_renderer(rays, size)
    render(None)
    fig = render.figure
    ax = next(a for a in fig.axes if a.name == "3d")
    for axis, centre in ((ax.xaxis, c[:, 0]), (ax.yaxis, c[:, 2]), (ax.zaxis, -c[:, 1])):
        texts = [t.get_text() for t in axis.get_ticklabels() if t.get_text()]
        assert len(texts) == 3 and len(set(texts)) == 3, texts
        assert all(len(t) <= 8 for t in texts), texts
        # the middle tick is the plotted box's centre, which lies within the camera path's span
        assert centre.min() - spread <= float(texts[1]) <= centre.max() + spread, (texts, centre)
    tight = ax.get_tightbbox(fig.canvas.get_renderer())
    assert tight.x0 >= -1 and tight.y0 >= -1 and tight.x1 <= size[1] + 1 and tight.y1 <= size[0] + 1, tight.bounds


def test_camera_plot_is_large_with_readable_ticks_and_frame_numbers():
    """The pictures' camera plot is at least 320 px, its tick labels at least 8 pt, and every camera
    centre carries its frame number (issue 28: it was a 200 px thumbnail with 6 pt ticks, no numbers)."""
    from p4d.inspect.camera import camera_plot_renderer
    from p4d.inspect.panels import CAMERA_PLOT_SIZE

    rays, *_ = _known_rays()
    render = camera_plot_renderer(rays, CAMERA_PLOT_SIZE, title="")
    assert render(None).shape[:2] == CAMERA_PLOT_SIZE and min(CAMERA_PLOT_SIZE) >= 320
    ax = next(a for a in render.figure.axes if a.name == "3d")
    sizes = {t.get_fontsize() for axis in (ax.xaxis, ax.yaxis, ax.zaxis) for t in axis.get_ticklabels()}
    assert min(sizes) >= 8, sizes
    labels = sorted(int(t.get_text()) for t in ax.texts)
    assert labels == list(range(len(rays))), labels
