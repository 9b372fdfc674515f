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
