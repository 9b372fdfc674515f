"""Issue 27: `cache summary` and precompute's end line count heads.safetensors apart from the arrays."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from p4d.cache_schema import format_summary
from p4d.cache_schema.summary import human_bytes, store_bytes
from p4d.cli import app

HEADS = 1_234_567  # bytes: stands in for the 1.3 GB l4p heads file


def du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def test_summary_counts_the_heads_file_apart(filled):
    root = Path(filled.url)
    before = format_summary(filled)
    assert "heads          none (heads.safetensors not written yet)" in before
    filled.write_side_file("heads.safetensors", b"\1" * HEADS)

    assert store_bytes(filled.url) == (du(root), HEADS)
    text = CliRunner().invoke(app, ["cache", "summary", str(root)]).output
    arrays = sum(du(root / g) for g in ("latents", "maps", "clips") if (root / g).exists())
    assert f"    arrays   {human_bytes(arrays):>10s} on disk vs" in text           # no heads in it
    assert f"    heads    {human_bytes(HEADS):>10s} on disk (heads.safetensors" in text and "1.2 MB" in text
    assert f"    store    {human_bytes(du(root)):>10s} on disk in all" in text
    assert du(root) >= arrays + HEADS


def test_precompute_end_line_names_the_heads_file():
    from p4d.precompute.job import PrecomputeReport

    line = PrecomputeReport(store_bytes=1369 * 2**20, heads_bytes=1289 * 2**20).headline()
    # in `cache summary`'s decimal units (the demo printed "heads file 5.0 MiB" above "heads 5.3 MB"):
    # 1369 MiB = 1,435,500,544 B, 1289 MiB = 1,351,614,464 B, 80 MiB = 83,886,080 B
    assert "store 1.4 GB (heads file 1.4 GB, arrays and side files 83.9 MB)" in line
    assert f"heads file {human_bytes(1289 * 2**20)}" in line
