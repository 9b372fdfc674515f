"""`p4d view` clicked in a real headless Chromium (selenium + Debian's chromium-driver; `.ci/run`
installs them, a run without them skips with the reason).

The page under test shows clip 1 of the tiny-teacher store with a student stand-in (F̂_4D = the
teacher's F_4D + seeded noise, decoded by the store's heads). The test moves the frame slider with
the keyboard, hovers a known pixel of the depth view and reads the values shown; the truth is the
store read with plain zarr (maps are float16, DESIGN.md: decoded by a cast to float32) and, for the
student, the store's heads run directly with torch. It toggles teacher / student / error, drags the
camera plot, plays and pauses, and checks that nothing reached the console or the network. A control page (the same
page sabotaged: values off by 1 %, frozen depth frames, identical student, no camera, a dead play
button, no RANDOM TEACHER banner, a console error and a remote image) proves every check can fail; a second (canvases hidden) that the
blank-screenshot check can.
"""

from __future__ import annotations

import base64
import io
import json
import math
import re
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from browser import (blank_problem, changed, chrome, console_messages, external, requested_urls,  # tests/inspect/browser.py
                     selenium_missing)

pytestmark = [pytest.mark.slow, pytest.mark.skipif(selenium_missing() is not None, reason=str(selenium_missing()))]

CLIP = 1
FRAME = 3            # frames advanced with the slider
CELL = (40, 70)      # (row, column) of the hovered pixel in the page's grid


class NoisyRun:
    """A :class:`p4d.inspect.compare.StudentRun` stand-in: F̂_4D = the teacher's F_4D + N(0, 0.5²)."""

    url, steps = "noisy-teacher", [1]

    def __init__(self, f4d):
        self.f4d_hat = f4d + 0.5 * np.random.default_rng(0).standard_normal(f4d.shape).astype(np.float32)

    def predictor(self, step=None):
        return lambda frames, timestamps: self.f4d_hat


@pytest.fixture(scope="module")
def page(store, store_path, tmp_path_factory):
    from p4d.cache_schema import read_clip
    from p4d.inspect.view import write_view

    run = NoisyRun(read_clip(store, CLIP)["f4d"])
    result = write_view(str(store_path), tmp_path_factory.mktemp("view") / "view.html", clip=CLIP, compare=run)
    return result, run


@pytest.fixture(scope="module")
def truth(store, store_path, page):
    """Stored maps of the clip read with plain zarr, the student's maps from the store's heads."""
    import torch
    import zarr

    from p4d.heads import HEADS_FILENAME, heads_from_bytes

    from p4d.cache_schema.map_codecs import decode_map

    def stored(m):  # a quant16 store's codes decoded by the formula its attrs state, as the page carries them
        arr = zarr.open_array(str(store_path), path=f"maps/{m}", mode="r")
        if arr.attrs["codec"]["name"] != "quant16":
            return arr[CLIP]
        quant = zarr.open_array(str(store_path), path=f"maps/{m}_quant", mode="r")[CLIP]
        return decode_map(m, arr[CLIP][None], quant[None])[0].astype(np.float16)

    maps = {m: stored(m) for m in ("depth", "flow", "motion", "camray")}
    assert all(v.dtype == np.float16 for v in maps.values())
    heads = heads_from_bytes(store.read_side_file(HEADS_FILENAME), dtype=torch.float32)
    with torch.no_grad():
        out = heads(torch.from_numpy(page[1].f4d_hat)[None], modalities=list(maps))
    student = {m: v[0].numpy().astype(np.float16) for m, v in out.items()}  # as the page carries them
    return maps, student, out["depth"][0].numpy()


def payload(path):
    text = path.read_text(encoding="utf-8")
    return json.loads(re.search(r'<script type="application/json" id="p4d-data">(.*?)</script>', text, re.S)
                      .group(1).replace("<\\/", "</"))


def open_page(driver, path) -> float:
    """Load ``path``; seconds until the page's script says all its images are drawn."""
    start = time.perf_counter()
    driver.get(path.resolve().as_uri())
    for _ in range(600):
        if driver.execute_script("return document.body.dataset.ready === '1'"):
            return time.perf_counter() - start
        time.sleep(0.05)
    raise AssertionError(f"{path}: page never became ready")


def hover_cell(driver, element_id, cell, grid):
    """Move the mouse over the centre of grid cell ``cell`` = (row, col) of canvas ``element_id``."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    canvas = driver.find_element(By.ID, element_id)
    size = driver.execute_script("var c = arguments[0]; return [c.clientWidth, c.clientHeight, c.clientLeft, "
                                 "c.offsetWidth, c.offsetHeight]", canvas)
    cw, ch, border, ow, oh = size
    x = border + (cell[1] + 0.5) * cw / grid[1]   # from the border box's left edge
    y = border + (cell[0] + 0.5) * ch / grid[0]
    ActionChains(driver).move_to_element_with_offset(canvas, int(math.floor(x - ow / 2)), int(math.floor(y - oh / 2))).perform()


def shot(driver, element_id=None) -> bytes:
    from selenium.webdriver.common.by import By

    return driver.get_screenshot_as_png() if element_id is None else driver.find_element(By.ID, element_id).screenshot_as_png


def cell_value(driver, cell_id):
    return driver.execute_script(f"return document.getElementById('{cell_id}').dataset.value")


def readout_problems(driver, truth, grid, stride, frame) -> list[str]:
    """Compare every value the read-out shows with the independent truth at the hovered pixel."""
    maps, student, _ = truth
    where = driver.execute_script("var d = document.getElementById('readout-where').dataset; return [d.frame, d.y, d.x]")
    want = [frame, CELL[0] * stride, CELL[1] * stride]
    if where is None or [int(v) if v is not None else None for v in where] != want:
        return [f"read-out names pixel {where}, expected (frame, y, x) = {want}"]
    t, y, x = want
    problems = []
    for layer, src in (("teacher", maps), ("student", student)):
        d = float(cell_value(driver, f"readout-{layer}-depth"))
        if d != float(src["depth"][t, y, x, 0]):
            problems.append(f"{layer} depth shown {d!r}, stored {float(src['depth'][t, y, x, 0])!r}")
        u, v = (float(s) for s in cell_value(driver, f"readout-{layer}-flow").split(","))
        if (u, v) != tuple(float(a) for a in src["flow"][t, y, x]):
            problems.append(f"{layer} flow shown {(u, v)}, stored {tuple(src['flow'][t, y, x])}")
        p = float(cell_value(driver, f"readout-{layer}-motion"))
        if not math.isclose(p, 1 / (1 + math.exp(-float(src["motion"][t, y, x, 0]))), rel_tol=1e-9):
            problems.append(f"{layer} motion probability shown {p}")
        h, w = maps["depth"].shape[1:3]
        hp, wp = src["camray"].shape[1:3]
        ray = src["camray"][t, min(int((y + 0.5) * hp / h), hp - 1), min(int((x + 0.5) * wp / w), wp - 1), :3].astype(np.float64)
        shown = np.array([float(s) for s in cell_value(driver, f"readout-{layer}-camray").split(",")])
        if not np.allclose(shown, ray / np.linalg.norm(ray), atol=1e-6):
            problems.append(f"{layer} ray direction shown {shown}")
    err = float(cell_value(driver, "readout-error-depth"))
    a, b = float(maps["depth"][t, y, x, 0]), float(student["depth"][t, y, x, 0])
    if not math.isclose(err, abs(b - a) / a, rel_tol=1e-9):
        problems.append(f"depth error shown {err}, expected {abs(b - a) / a}")
    return problems


def store_is_random(store_path) -> bool:
    """The store's own record (its root zarr.json, read as plain JSON) of a random-weights teacher."""
    attrs = json.loads((Path(store_path) / "zarr.json").read_text())["attributes"]
    return bool(attrs["spec"]["teacher"].get("random_weights", False))


def run_checks(driver, path, truth, *, random_teacher: bool) -> tuple[dict[str, str | None], dict]:
    """Every check on the page at ``path``: {check: problem or None}, plus measurements. ``random_teacher``:
    whether the store's teacher had random weights (the page must show the banner exactly then)."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    data = payload(path)["clips"][0]
    grid, stride = data["grid"], data["stride"]
    console_messages(driver), requested_urls(driver)  # drop what an earlier page left
    load_s = open_page(driver, path)
    problems: dict[str, str | None] = {}
    page0, depth0 = shot(driver), shot(driver, "view-depth")
    problems["blank"] = blank_problem(page0)
    slider = driver.find_element(By.ID, "frame")
    for _ in range(FRAME):
        slider.send_keys(Keys.ARROW_RIGHT)
    label = driver.find_element(By.ID, "frame-label").text
    depth3 = shot(driver, "view-depth")
    moved = changed(depth0, depth3)
    problems["slider"] = (None if label.startswith(f"frame {FRAME} of") and moved > 0.05 and changed(page0, shot(driver)) > 0
                          else f"after the slider: label {label!r}, {moved:.3f} of the depth view changed")
    hover_cell(driver, "view-depth", CELL, grid)
    found = readout_problems(driver, truth, grid, stride, FRAME)
    problems["readout"] = "; ".join(found) or None
    toggles = {}
    for layer in ("student", "error", "teacher"):
        driver.find_element(By.ID, f"layer-{layer}").click()
        toggles[layer] = shot(driver, "view-depth")
    driver.find_element(By.ID, "layer-error").click()
    legend = driver.find_element(By.ID, "legend-depth").text
    driver.find_element(By.ID, "layer-teacher").click()
    problems["toggle"] = (None if changed(toggles["teacher"], toggles["student"]) > 0.05
                          and changed(toggles["student"], toggles["error"]) > 0.05
                          and changed(toggles["teacher"], depth3) == 0 and "p99" in legend
                          else "teacher / student / error views do not differ (or teacher did not come back)")
    cam = driver.find_element(By.ID, "camera")
    yaw0, cam0 = float(driver.find_element(By.ID, "camera-angle").get_attribute("data-yaw") or "nan"), shot(driver, "camera")
    ActionChains(driver).move_to_element(cam).click_and_hold().move_by_offset(80, 25).release().perform()
    yaw1, cam1 = float(driver.find_element(By.ID, "camera-angle").get_attribute("data-yaw") or "nan"), shot(driver, "camera")
    problems["camera"] = (None if math.isclose(yaw1 - yaw0, 0.8, abs_tol=0.05) and changed(cam0, cam1) > 0.005
                          else f"dragging the camera plot: yaw {yaw0} -> {yaw1}, {changed(cam0, cam1):.4f} changed")
    play = driver.find_element(By.ID, "play")
    before = driver.find_element(By.ID, "frame").get_attribute("value")
    play.click()
    for _ in range(100):  # it advances by itself (waits of the stored timestamp steps: 1/12 s here)
        if driver.find_element(By.ID, "frame").get_attribute("value") != before:
            break
        time.sleep(0.05)
    playing = play.text
    play.click()
    after = driver.find_element(By.ID, "frame").get_attribute("value")
    problems["play"] = None if after != before and playing == "pause" and play.text == "play" else (
        f"play: frame {before} -> {after}, button {playing!r} then {play.text!r}")
    shown = "RANDOM TEACHER" in driver.find_element(By.ID, "overview").text
    problems["random banner"] = None if shown == random_teacher else (
        "no RANDOM TEACHER banner" if random_teacher else "a RANDOM TEACHER banner on a trained teacher's store")
    console = console_messages(driver)
    problems["console"] = "; ".join(console) or None
    ext = external(requested_urls(driver))
    problems["external"] = ", ".join(ext) or None
    return problems, {"load_s": load_s, "legend": legend, "moved": moved}


def test_view_page_clicked_in_chromium(page, truth, store_path):
    result, _ = page
    driver = chrome()
    try:
        problems, seen = run_checks(driver, result.path, truth, random_teacher=store_is_random(store_path))
    finally:
        driver.quit()
    print(f"view page: {result.bytes / 1e6:.2f} MB, stride {result.strides}, ready in {seen['load_s']:.2f} s "
          f"(headless chromium); slider moved {seen['moved']:.2f} of the depth view; legend: {seen['legend']!r}")
    assert problems == dict.fromkeys(problems), problems
    # the error legend's scale is the 99th percentile of this clip's depth errors, computed here independently
    maps, _, student_depth = truth  # the scale is taken before the maps are rounded to float16 for the page
    t, s = maps["depth"][..., 0].astype(np.float64), student_depth[..., 0].astype(np.float64)
    p99 = np.percentile(np.abs(s - t) / t, 99)
    shown = float(re.search(r"p99 of this clip = ([0-9.e+-]+)", seen["legend"]).group(1))
    assert shown == pytest.approx(p99, rel=5e-3), seen["legend"]


def _png_frames_frozen(uri: str, rows: int) -> str:
    """The same sprite with every frame replaced by frame 0."""
    with Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))) as im:
        a = np.asarray(im.convert("RGB"))
    a = np.tile(a[:rows], (a.shape[0] // rows, 1, 1))
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def sabotaged(path, out, *, hide_canvases=False):
    text = path.read_text(encoding="utf-8")
    data = payload(path)
    clip = data["clips"][0]
    teacher = clip["layers"]["teacher"]
    d = np.frombuffer(base64.b64decode(teacher["depth"]["values"]), "<f2") * np.float16(1.01)
    teacher["depth"]["values"] = base64.b64encode(d.astype("<f2").tobytes()).decode()
    teacher["depth"]["img"] = _png_frames_frozen(teacher["depth"]["img"], clip["grid"][0])
    clip["layers"]["student"] = clip["layers"]["error"] = teacher
    clip["camera"] = {"teacher": {"note": "control: no camera"}}
    # the banner flipped: shown for a trained teacher's store, hidden for a random one's
    data["overview"]["random_teacher"] = None if data["overview"]["random_teacher"] else "RANDOM TEACHER: control"
    blob = json.dumps(data).replace("</", "<\\/")
    text = re.sub(r'(<script type="application/json" id="p4d-data">).*?(</script>)', lambda m: m.group(1) + blob + m.group(2),
                  text, flags=re.S)
    extra = ('<script>console.error("control: boom")</script><img src="http://example.invalid/p4d-control.png">'
             '<script>document.addEventListener("click", function (e) { if (e.target.id === "play") '
             'e.stopImmediatePropagation(); }, true)</script>'  # a play button that does nothing
             if not hide_canvases else "<style>canvas, img { visibility: hidden; }</style>")
    out.write_text(text.replace("</body>", extra + "</body>"), encoding="utf-8")
    return out


def test_control_pages_fail_every_check(page, truth, store_path, tmp_path):
    result, _ = page
    driver = chrome()
    try:
        random_teacher = store_is_random(store_path)
        bad, _ = run_checks(driver, sabotaged(result.path, tmp_path / "control.html"), truth,
                            random_teacher=random_teacher)
        hidden, _ = run_checks(driver, sabotaged(result.path, tmp_path / "hidden.html", hide_canvases=True), truth,
                               random_teacher=random_teacher)
    finally:
        driver.quit()
    print("control page:", bad)
    failed = {k for k, v in bad.items() if v}
    assert failed == set(bad) - {"blank"}, bad
    assert "depth shown" in bad["readout"] and "example.invalid" in bad["external"] and "boom" in bad["console"]
    assert hidden["blank"], hidden
