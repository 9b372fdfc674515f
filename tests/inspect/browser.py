"""Load a local HTML file in a real headless Chromium (Debian's ``chromium`` package) and report
what a user's browser would see: the screenshot, every console message, every request the page
made (from Chromium's own NetLog), and the DOM after loading.

Requests are attributed to the page by their network isolation key (a ``file://`` page's
requests carry ``file://``); Chromium's own background requests (time sync, sign-in probes) carry
another key and are not the page's doing.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars")
CONSOLE = re.compile(r":CONSOLE[:(]\d*\)?\]? (\".*)$")


def find_chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@dataclass
class PageLoad:
    screenshot: Path
    console: list[str]          # every console message (log, warning, error, uncaught exception)
    page_requests: list[str]    # URLs the page asked for through the network stack (file:// itself loads apart)
    dom: str

    @property
    def external_requests(self) -> list[str]:
        return [u for u in self.page_requests if not u.startswith(("file:", "data:"))]


def _page_requests(netlog: Path) -> list[str]:
    log = json.loads(netlog.read_text())
    start = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    urls = []
    for event in log["events"]:
        params = event.get("params") or {}
        if event["type"] == start and "file://" in str(params.get("network_isolation_key", "")):
            urls.append(params["url"])
    return urls


def load_page(html: Path, out_dir: Path, *, size=(1280, 2400), timeout_s: float = 120) -> PageLoad:
    """Screenshot ``html`` at ``size`` (width, height) and collect its console messages, requests and DOM."""
    browser = find_chromium()
    assert browser, "chromium is not installed"
    url = html.resolve().as_uri()
    shot, netlog = out_dir / "screenshot.png", out_dir / "netlog.json"
    with tempfile.TemporaryDirectory() as profile:
        run = subprocess.run([browser, *FLAGS, f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0",
                              f"--log-net-log={netlog}", f"--window-size={size[0]},{size[1]}",
                              f"--screenshot={shot}", url], capture_output=True, text=True, timeout=timeout_s)
    assert run.returncode == 0 and shot.is_file(), run.stderr[-3000:]
    console = [m.group(1) for line in run.stderr.splitlines() if (m := CONSOLE.search(line))]
    with tempfile.TemporaryDirectory() as profile:
        dom = subprocess.run([browser, *FLAGS, f"--user-data-dir={profile}", "--dump-dom", url],
                             capture_output=True, text=True, timeout=timeout_s).stdout
    return PageLoad(screenshot=shot, console=console, page_requests=_page_requests(netlog), dom=dom)


# --- a browser that clicks (selenium + Debian's chromium-driver) ------------------------------------


def find_chromedriver() -> str | None:
    return shutil.which("chromedriver")


def selenium_missing() -> str | None:
    """Why the clicking tests cannot run here (None when they can)."""
    if find_chromium() is None:
        return "chromium is not installed (apt-get install chromium chromium-driver; .ci/run does)"
    if find_chromedriver() is None:
        return "chromedriver is not installed (apt-get install chromium-driver; .ci/run does)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e .[test])"
    return None


def chrome(size=(1400, 1800)):
    """A headless Chromium driven by chromedriver, logging the console and the network (DevTools
    performance log), with no background networking of its own."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = find_chromium()
    for flag in ("--headless=new", *FLAGS[1:], f"--window-size={size[0]},{size[1]}"):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    return webdriver.Chrome(service=Service(find_chromedriver()), options=opts)


def console_messages(driver) -> list[str]:
    """Console messages (and uncaught errors) since the last call, as 'LEVEL text'."""
    return [f"{e['level']} {e['message']}" for e in driver.get_log("browser")]


def requested_urls(driver) -> list[str]:
    """URLs the page asked for since the last call (DevTools Network.requestWillBeSent)."""
    urls = []
    for entry in driver.get_log("performance"):
        msg = json.loads(entry["message"])["message"]
        if msg.get("method") == "Network.requestWillBeSent":
            urls.append(msg["params"]["request"]["url"])
    return urls


def external(urls: list[str]) -> list[str]:
    return [u for u in urls if not u.startswith(("file:", "data:", "blob:", "about:"))]


def png_rgb(png: bytes):
    import io

    import numpy as np
    from PIL import Image

    with Image.open(io.BytesIO(png)) as im:
        return np.asarray(im.convert("RGB")).astype(np.int16)


def blank_problem(png: bytes, *, min_colourful: float = 0.02) -> str | None:
    """None if the screenshot shows colour maps (>= min_colourful saturated pixels), else why not."""
    rgb = png_rgb(png)
    colourful = float(((rgb.max(axis=2) - rgb.min(axis=2)) > 60).mean())
    return None if colourful >= min_colourful else f"screenshot nearly blank: {colourful:.4f} saturated pixels"


def changed(png_a: bytes, png_b: bytes, *, min_fraction: float = 0.01) -> float:
    """Fraction of pixels that differ between two same-size screenshots."""
    a, b = png_rgb(png_a), png_rgb(png_b)
    if a.shape != b.shape:
        return 1.0
    return float((abs(a - b).max(axis=2) > 8).mean())
