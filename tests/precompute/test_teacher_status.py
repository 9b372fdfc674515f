"""Issue 27: the precompute banner counts the teacher's parameters once, as `p4d teacher info` does."""

import re

import pytest
from typer.testing import CliRunner

from p4d.cli import app
from p4d.precompute.job import teacher_status
from p4d.precompute.worker import TeacherJob
from p4d.teacher.presets import get_preset


@pytest.mark.parametrize("preset", ["tiny", "l4p"])
def test_banner_parameter_count_matches_teacher_info(preset):
    info = CliRunner().invoke(app, ["teacher", "info", "--preset", preset])
    assert info.exit_code == 0, info.output
    counts = {m[1]: int(m[2].replace(",", "")) for m in re.finditer(r"^  (\S+)\s+([\d,]+)  \(", info.output, re.M)}
    parts = sum(v for k, v in counts.items() if k != "total")
    assert counts["total"] == parts                     # the parts add up to the total: counting both doubles it

    job = TeacherJob(preset=get_preset(preset), weights=None, seed=0, device="cpu", dtype="fp32", batch_size=1,
                     max_pixels=None)
    banner = teacher_status(job, random_weights=True)
    assert f"{counts['total']:,d} parameters ({counts['total'] / 1e6:.1f} M)" in banner
    if preset == "l4p":
        assert "1,351,456,138 parameters (1351.5 M)" in banner   # the count the issue quotes from teacher info
