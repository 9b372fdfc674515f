"""The README and the design document: every relative link points at a file in the repository,
and the help texts a new user reads first say what the commands do."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from p4d.cli import app

ROOT = Path(__file__).resolve().parents[1]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def tracked_files() -> set[str] | None:
    try:
        out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                             capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None  # not a git checkout (e.g. an sdist): fall back to the files on disk
    return set(out.splitlines())


@pytest.mark.parametrize("doc", ["README.md", *sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "docs").glob("*.md"))])
def test_relative_links_point_at_files_in_the_repository(doc):
    text = (ROOT / doc).read_text()
    links = [u for u in LINK.findall(text) if "://" not in u and not u.startswith(("#", "mailto:"))]
    if doc == "README.md":
        assert "docs/design.md" in links
    tracked = tracked_files()
    for url in links:
        target = (ROOT / doc).parent / url.split("#")[0]
        rel = target.resolve().relative_to(ROOT).as_posix()
        assert target.exists(), f"{doc}: link {url} points at nothing"
        if tracked is not None:   # a gitignored file (like demo/clip.png) is broken on a fresh clone
            assert rel in tracked or any(t.startswith(rel + "/") for t in tracked), f"{doc}: {url} is not in git"


def test_readme_names_no_file_outside_the_repository():
    text = (ROOT / "README.md").read_text()
    assert "`DESIGN.md`" not in text


def test_teacher_list_prints_the_licences_the_readme_points_at():
    out = CliRunner().invoke(app, ["teacher", "list"]).output
    assert "CC BY-NC-SA 4.0" in out and "no separate licence" in out
    readme = " ".join((ROOT / "README.md").read_text().split())
    assert "`p4d teacher list` prints each preset's weights source and these terms" in readme


def test_demo_help_says_it_runs_the_whole_pipeline():
    out = CliRunner().invoke(app, ["demo", "--help"]).output
    for word in ("precompute", "train", "inspect", "clip.png"):
        assert word in out


def test_every_guide_page_is_linked_from_the_readme():
    readme = (ROOT / "README.md").read_text()
    for page in (ROOT / "docs").glob("*.md"):
        assert f"(docs/{page.name})" in readme, f"README.md does not link docs/{page.name}"
