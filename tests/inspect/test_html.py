"""The HTML page: parses, inline data: images that Pillow decodes, no external URL, statuses."""

import base64
import io
from html.parser import HTMLParser

import pytest
from PIL import Image

from p4d.inspect import inspect_store
from p4d.inspect.panels import CAMERA_PLOT_SIZE

pytestmark = pytest.mark.slow


class _Collect(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def _parse(path):
    p = _Collect()
    p.feed(path.read_text(encoding="utf-8"))
    p.close()
    return p


@pytest.fixture(scope="module")
def page(store_path, tmp_path_factory):
    out = tmp_path_factory.mktemp("html") / "cache.html"
    result = inspect_store(str(store_path), out, clip="all")
    return out, result


def test_every_img_is_an_inline_png_that_pillow_decodes(page):
    out, result = page
    parsed = _parse(out)
    imgs = [a for t, a in parsed.tags if t == "img"]
    assert len(imgs) == 4 == len(result.clips)  # the 4 done clips
    for attrs in imgs:
        src = attrs["src"]
        assert src.startswith("data:image/png;base64,")
        with Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))) as im:
            im.load()
            assert im.format == "PNG" and im.width > 5 * 112
            # 4 evenly spaced frames per clip by default
            assert 4 * 112 < im.height < 4 * 112 + 200 + CAMERA_PLOT_SIZE[0]  # rows + title + legends (camera plot tallest)


def test_page_references_no_external_url(page):
    out, _ = page
    parsed = _parse(out)
    for tag, attrs in parsed.tags:
        assert tag not in ("script", "link", "iframe", "object", "embed")
        for key in ("src", "href"):
            if key in attrs:
                assert attrs[key].startswith(("data:", "#")), (tag, key, attrs[key][:60])
    raw = out.read_text(encoding="utf-8")
    assert "url(" not in raw and "@import" not in raw


def test_statuses_and_failure_reasons_are_listed(page):
    out, result = page
    text = " ".join(_parse(out).text)
    assert "bad.mp4" in text and "failed" in text and "cannot be opened as a video file" in text
    assert "4 done, 1 failed" in " ".join(text.split())
    assert result.clips == [1, 2, 3, 4]
    assert list(result.not_rendered) == [0] and "failed" in result.not_rendered[0]


def test_selection_max_clips_and_out_of_range(store_path, tmp_path):
    out = tmp_path / "sel.html"
    result = inspect_store(str(store_path), out, clip="2-4,9", max_clips=2)
    assert result.clips == [2, 3]
    assert "out of range" in result.not_rendered[9]
    text = " ".join(" ".join(_parse(out).text).split())
    assert "first 2 of 3 selected done clips" in text and "out of range" in text
