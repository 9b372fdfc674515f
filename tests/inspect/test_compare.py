"""Teacher vs student maps: hand-computed error numbers, P̂_m = D_m(F̂_4D) through the store's
heads, the comparison and the per-step strip figures."""

import math

import numpy as np
import pytest

from p4d.cache_schema.map_codecs import MAP_QUANT
from p4d.cache_schema import read_clip
from p4d.errors import ConfigError
from p4d.inspect import load_clip
from p4d.inspect.compare import (
    StepDepth,
    compare_panels,
    format_errors,
    load_store_heads,
    map_errors,
    maps_from_f4d,
    step_depths,
    steps_panels,
)
from p4d.inspect.figure import compose, write_png

pytestmark = pytest.mark.slow


def test_map_errors_by_hand():
    sig5 = 1 / (1 + math.exp(-5))
    teacher = {
        "depth": np.array([1.0, 2.0]).reshape(1, 1, 2, 1),
        "flow": np.zeros((2, 1, 1, 2)),
        "motion": np.array([5.0, 5.0, -5.0, -5.0]).reshape(1, 2, 2, 1),
        "camray": np.array([[1, 0, 0, 0, 0, 0], [1, 0, 0, 0, 0, 0]], float).reshape(1, 1, 2, 6),
    }
    student = {
        "depth": np.array([1.5, 2.0]).reshape(1, 1, 2, 1),
        "flow": np.array([[100.0, 100.0], [3.0, 4.0]]).reshape(2, 1, 1, 2),  # frame 0 is ignored
        "motion": np.array([5.0, -5.0, 5.0, -5.0]).reshape(1, 2, 2, 1),
        "camray": np.array([[1, 0, 0, 0, 0, 0], [0, 2, 0, 1, 1, 1]], float).reshape(1, 1, 2, 6),
    }
    err = map_errors(teacher, student)
    assert err["depth"]["abs_rel"] == pytest.approx(0.25)  # mean(0.5 / 1, 0 / 2)
    assert err["depth"]["rmse_log"] == pytest.approx(math.log(1.5) / math.sqrt(2))
    assert err["flow"]["epe"] == pytest.approx(5.0)
    assert err["motion"]["iou"] == pytest.approx(1 / 3)  # masks {0, 1} vs {0, 2}
    assert err["motion"]["prob_mae"] == pytest.approx((2 * sig5 - 1) / 2)
    assert err["camray"]["dir_deg"] == pytest.approx(45.0)  # 0° and 90°
    assert err["camray"]["moment_l1"] == pytest.approx(0.5)  # (0 + 3) / 6
    assert "flow epe 5 px" in format_errors(err)
    with pytest.raises(ConfigError, match="depth: student map shape"):
        map_errors({"depth": np.zeros((1, 2))}, {"depth": np.zeros((2, 1))})


@pytest.fixture(scope="module")
def clip1(store):
    return load_clip(store, 1)


@pytest.fixture(scope="module")
def heads(store):
    return load_store_heads(store)


def test_store_heads_on_the_cached_latents_reproduce_the_cached_maps(store, heads):
    """P̂_m from F̂_4D = the teacher's own (cached, codec-decoded) F_4D must match the cached maps
    the teacher wrote (up to the stored maps' bound and the latent codec); noise makes it worse."""
    cached = read_clip(store, 2)
    pred = maps_from_f4d(heads, cached["f4d"])
    assert set(pred) == {"depth", "flow", "motion", "camray"}
    err = map_errors({m: cached[m] for m in pred}, pred)
    # the cached maps are the teacher's within the store's map bound (quant16: depth 0.25 %, flow 1/16 px per component)
    quant = store.spec.map_codec == "quant16"
    depth_b, flow_b = (MAP_QUANT["depth"].bound, 2**0.5 * MAP_QUANT["flow"].bound) if quant else (0.0, 0.0)
    assert err["depth"]["abs_rel"] < 2e-3 + depth_b and err["flow"]["epe"] < 2e-3 + flow_b
    assert err["camray"]["dir_deg"] < 0.5
    noisy = cached["f4d"] + np.random.default_rng(0).standard_normal(cached["f4d"].shape).astype(np.float32)
    worse = map_errors({"depth": cached["depth"]}, maps_from_f4d(heads, noisy, ["depth"]))
    assert worse["depth"]["abs_rel"] > 5 * err["depth"]["abs_rel"]
    with pytest.raises(ConfigError, match="F̂_4D: expected"):
        maps_from_f4d(heads, cached["f4d"][:, :4])


def test_compare_panels_and_png(clip1, tmp_path):
    student = {m: v.copy() for m, v in clip1.maps.items()}
    student["depth"] = student["depth"] * 1.1
    panels = compare_panels(clip1, student)
    assert panels.columns == ["frame", "depth teacher", "depth student", "depth error", "flow teacher", "flow student",
                              "flow error", "motion teacher", "motion student", "motion error", "rays teacher",
                              "rays student", "rays error"]
    assert panels.errors["depth.abs_rel"] == pytest.approx(0.1, rel=1e-4)
    assert panels.errors["flow.epe"] == 0 and panels.errors["motion.iou"] == 1
    assert "teacher vs student: depth abs_rel 0.1" in panels.title[-1]
    # identical maps give identical tiles (the student is drawn in the teacher's colour scale)
    image, layout = compose(panels, [4])
    crop = lambda c: image[slice(*layout.tile_box(0, c)[1::2]), slice(*layout.tile_box(0, c)[0::2])]  # noqa: E731
    np.testing.assert_array_equal(crop(4), crop(5))
    assert np.abs(crop(1).astype(int) - crop(2).astype(int)).max() > 0
    # per-pixel error maps on the magma scale up to the clip's 99th percentile: depth off by 10 % everywhere ->
    # the top of the scale, flow and motion identical -> 0 (black); the colours are matplotlib's, computed here
    import matplotlib

    magma = lambda t: np.round(np.array(matplotlib.colormaps["magma"](t)[:3]) * 255)  # noqa: E731
    depth_err = crop(3).reshape(-1, 3).astype(int)
    assert np.abs(depth_err - magma(1.0)).max() <= 2
    assert np.abs(crop(6).reshape(-1, 3) - magma(0.0)).max() <= 1 and np.abs(crop(9).reshape(-1, 3) - magma(0.0)).max() <= 1
    # the motion legend, the error colorbars and the camera plot are all there (compare used to drop two)
    assert len(panels.legends) == 2 + 2 + 2 + 2 and panels.camera_legend == len(panels.legends) - 1  # (map, error) x 3 + rays error + camera
    out = tmp_path / "cmp.png"
    write_png(panels, out)
    assert out.stat().st_size > 0


def test_error_map_is_bright_at_a_realistic_small_error_with_the_scale_on_the_legend(clip1):
    """A student 1 % off the teacher's depth (a realistic error) must not give a black error map: the scale
    runs to the clip's 99th percentile (0.01 here) and the legend says so. The old fixed 0..0.5 scale drew
    it at magma(0.02), i.e. black."""
    student = {m: v.copy() for m, v in clip1.maps.items()}
    rng = np.random.default_rng(0)
    student["depth"] = clip1.maps["depth"] * (1 + 0.01 * rng.uniform(0.5, 1.0, clip1.maps["depth"].shape))
    panels = compare_panels(clip1, student)
    image, layout = compose(panels, [4])
    left, top, right, bottom = layout.tile_box(0, panels.columns.index("depth error"))
    tile = image[top:bottom, left:right].astype(int)
    assert tile.mean() > 80 and (tile.max(axis=2) > 150).mean() > 0.3, tile.mean()  # bright, not black
    from p4d.inspect.compare import error_scale

    rel = np.abs(student["depth"] - clip1.maps["depth"]) / clip1.maps["depth"]
    assert error_scale(rel) == pytest.approx(np.percentile(rel, 99)) and 0.009 < error_scale(rel) < 0.0101
    # the legend is the magma bar with "0" and the percentile written under its ends
    from p4d.inspect.colors import colorbar
    from p4d.inspect.panels import captioned

    top = float(np.percentile(rel[..., 0], 99))
    expected = captioned("depth error per pixel (rel.); bar = 0..p99 of this clip, clipped", colorbar(200, 14, "magma"),
                         under=("0", f"{top:.3g} rel."))
    np.testing.assert_array_equal(panels.legends[1], expected)  # (depth map legend, depth error legend, ...)
    assert error_scale(np.zeros(5)) == 1e-6 and error_scale(np.array([np.nan, 2.0])) == 2.0


def test_motion_overlay_stays_visible_on_a_red_scene(clip1):
    """Pure-red frames with a moving square: the motion column must differ from the frame inside the square
    (the fixed red overlay vanished: red blended into red is red) and equal it outside."""
    import dataclasses

    from p4d.inspect.panels import clip_panels

    n, h, w = clip1.frames.shape[:3]
    red = np.zeros_like(clip1.frames)
    red[..., 0] = 255
    logits = np.full((n, h, w, 1), -30.0, np.float32)
    logits[:, h // 4: h // 2, w // 4: w // 2] = 30.0
    data = dataclasses.replace(clip1, frames=red, maps={**clip1.maps, "motion": logits})
    panels = clip_panels(data, camera_plot=False)
    tile = panels.tiles[panels.columns.index("motion")].astype(int)
    inside = np.abs(tile[:, h // 4: h // 2, w // 4: w // 2] - red[:, h // 4: h // 2, w // 4: w // 2]).max(axis=-1)
    assert inside.min() > 100, inside.min()
    np.testing.assert_array_equal(tile[:, 0, 0], red[:, 0, 0])


class _FakeRun:
    """A StudentRun stand-in: F̂_4D = teacher F_4D + noise shrinking with the step."""

    url = "fake-run"
    steps = [100, 1000, 10]

    def __init__(self, f4d):
        self.f4d = f4d

    def predictor(self, step=None):
        noise = np.random.default_rng(0).standard_normal(self.f4d.shape).astype(np.float32)
        return lambda frames, timestamps: self.f4d + noise * (10.0 / (step or 1000))


def test_steps_strip(clip1, heads, tmp_path):
    depths = step_depths(_FakeRun(clip1.f4d), heads, clip1)
    assert [d.step for d in depths] == [100, 1000, 10]
    panels = steps_panels(clip1, depths)
    assert panels.columns == ["frame", "depth teacher", "step 10", "step 100", "step 1000"]
    rel = [float(x.split(": ")[1]) for x in panels.title[-1].split("teacher: ")[1].split(", ")]
    assert rel[0] > rel[1] > rel[2]  # less noise at later steps → closer to the teacher
    image, layout = compose(panels, [8])
    assert layout.num_cols == 5
    with pytest.raises(ConfigError, match="no checkpoints at steps \\[5\\]"):
        step_depths(_FakeRun(clip1.f4d), heads, clip1, [5])
    with pytest.raises(ConfigError, match="--steps: step 3 depth has shape"):
        steps_panels(clip1, [StepDepth(step=3, depth=np.ones((2, 2)))])


# --- a real `p4d train` run (2 steps of the tiny student on this store) -----------------------


@pytest.fixture(scope="module")
def run_dir(store, video_dir, tmp_path_factory):
    import json

    from p4d.train.config import resolve_config
    from p4d.train.trainer import main as train_main

    turns = [{"from": "human", "value": "<video>\nWhich way?\nA. left\nB. right"}, {"from": "gpt", "value": "A"}]
    conv = video_dir / "conv.jsonl"
    conv.write_text("".join(json.dumps({"id": f"r{i}", "video": f"good{i}.mp4", "conversations": turns}) + "\n"
                            for i in range(2)))
    out = tmp_path_factory.mktemp("inspect_run") / "run"
    cfg = resolve_config(overrides={
        "out": str(out), "data": {"conversations": str(conv), "cache": store.url, "batch_size": 2},
        "model": {"preset": "tiny"}, "optim": {"max_steps": 2, "warmup_steps": 1}, "log": {"progress": False, "tensorboard": False},
        "checkpoint": {"export": False, "every": 1}})
    train_main(cfg)
    return out


def test_student_f4d_is_the_d4dp_output_training_uses(run_dir, store, clip1):
    """Independent path: the Student's own distillation forward (targets given) returns f4d_hat."""
    import torch

    from p4d.inspect.compare import PROMPT, open_run, student_f4d
    from p4d.train.checkpoint import load_checkpoint_model
    from p4d.train.model import encode_chat

    run = open_run(str(run_dir), cache=store.url)
    assert run.steps == [1, 2]
    model, _ = load_checkpoint_model(run.folders[2], cache=store.url)
    got = student_f4d(model, clip1.frames, clip1.timestamp)
    assert got.shape == clip1.f4d.shape
    ids = encode_chat(model.tokenizer, model.cfg, [(PROMPT, None)], num_frames=16,
                      timestamps=clip1.timestamp.tolist())["input_ids"]
    model.eval()
    with torch.no_grad():
        out = model(frames=torch.from_numpy(clip1.frames)[None],
                    timestamps=torch.from_numpy(clip1.timestamp.astype(np.float32))[None],
                    input_ids=torch.tensor([ids]), targets={"f4d": torch.from_numpy(clip1.f4d)[None]})
    np.testing.assert_allclose(got, out["f4d_hat"][0].numpy(), rtol=1e-5, atol=1e-6)


def test_compare_and_steps_from_a_run(run_dir, store_path, tmp_path):
    from p4d.inspect import inspect_store

    out = inspect_store(str(store_path), tmp_path / "cmp.png", clip=1, compare=str(run_dir), frames=[0, 8])
    assert out.clips == [1] and (tmp_path / "cmp.png").stat().st_size > 0
    strip = inspect_store(str(store_path), tmp_path / "steps.png", clip=1, compare=str(run_dir), steps="all")
    assert strip.path.exists()
    page = inspect_store(str(store_path), tmp_path / "cmp.html", clip=1, compare=str(run_dir), frames=[0, 8])
    text = page.path.read_text()
    assert page.clips == [1] and text.count('src="data:image/png;base64,') == 1 and "teacher vs student:" in text
    assert "http" not in text.replace("http-equiv", "")  # self-contained: nothing to fetch
    one = run_dir / "checkpoints" / "step-000001"
    assert inspect_store(str(store_path), tmp_path / "one.png", clip=1, compare=str(one), frames=[3]).path.exists()
    with pytest.raises(ConfigError, match=r"no checkpoints at steps \[7\]"):
        inspect_store(str(store_path), tmp_path / "s7.png", clip=1, compare=str(run_dir), steps="7")


def test_compare_device_and_dtype(run_dir, store, store_path, clip1, tmp_path, monkeypatch):
    """--dtype reaches the student (bf16 F̂_4D near the fp32 one, not equal); --device cuda without a
    GPU, or --device without --compare, is a one-line error naming the flag, and writes nothing."""
    from p4d.inspect import inspect_store
    from p4d.inspect.compare import open_run

    f32 = open_run(str(run_dir), cache=store.url).predictor()(clip1.frames, clip1.timestamp)
    bf16 = open_run(str(run_dir), cache=store.url, dtype="bfloat16").predictor()(clip1.frames, clip1.timestamp)
    scale = np.abs(f32).max()
    assert not np.array_equal(f32, bf16) and np.abs(bf16 - f32).max() < 0.1 * scale
    monkeypatch.setattr(__import__("torch").cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match=r"^--device cuda: no CUDA device[^\n]*$"):
        inspect_store(str(store_path), tmp_path / "c.png", clip=1, compare=str(run_dir), device="cuda")
    with pytest.raises(ConfigError, match=r"^--device: only used with --compare"):
        inspect_store(str(store_path), tmp_path / "c.png", clip=1, device="cpu")
    assert not (tmp_path / "c.png").exists()
