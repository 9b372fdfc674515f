"""The HTML report in a real headless browser (Debian's `chromium`; `.ci/run` installs it, a local
run without it skips): it renders, logs nothing to the console, asks for nothing outside the
file, and its screenshot shows the page (text, table and the clips' figures), not a blank."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from browser import find_chromium, load_page  # tests/inspect/browser.py (rootdir-less import)

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(find_chromium() is None,
                                 reason="chromium is not installed (apt-get install chromium; .ci/run does)")]


def test_the_checks_catch_console_errors_and_external_requests(tmp_path):
    """A control page with a console error, an uncaught exception and a remote image: all three are seen."""
    bad = tmp_path / "bad.html"
    bad.write_text('<html><body><h1>control</h1><script>console.error("boom"); missing_fn();</script>'
                   '<img src="http://example.invalid/x.png"></body></html>')
    load = load_page(bad, tmp_path, size=(400, 300))
    assert any("boom" in m for m in load.console) and any("missing_fn" in m for m in load.console)
    assert load.external_requests == ["http://example.invalid/x.png"]


def test_html_report_renders_cleanly_in_chromium(random_store_path, tmp_path):
    from p4d.inspect import inspect_store

    page = tmp_path / "cache.html"
    result = inspect_store(str(random_store_path), page, clip="all")
    load = load_page(page, tmp_path)
    print(f"browser: screenshot {load.screenshot.stat().st_size} bytes, {len(load.console)} console messages, "
          f"{len(load.external_requests)} external requests")
    assert load.console == []
    assert load.external_requests == []
    # rendered: the DOM holds the table rows and one <img> per rendered clip
    assert load.dom.count("<img") == len(result.clips) == 4
    assert load.dom.count('<tr class="') == 5 and "RANDOM TEACHER" in load.dom
    with Image.open(load.screenshot) as im:
        rgb = np.asarray(im.convert("RGB")).astype(np.int16)
    assert rgb.shape[:2] == (2400, 1280)
    ink = (rgb.min(axis=2) < 200).mean()                          # anything not near-white
    colourful = ((rgb.max(axis=2) - rgb.min(axis=2)) > 60).mean()  # saturated pixels: the maps' colormaps
    assert ink > 0.05, ink
    assert colourful > 0.02, colourful
    red_text = ((rgb[..., 0] > 150) & (rgb[..., 1] < 60) & (rgb[..., 2] < 60))[:200].sum()
    assert red_text > 50                                          # the RANDOM TEACHER banner near the top
