"""Issue 27: `p4d train plot RUN` writes the loss curves of RUN/log.jsonl as a PNG (no tensorboard)."""

import json

import numpy as np
from PIL import Image
from typer.testing import CliRunner

from p4d.cli import app
from p4d.errors import ConfigError
from p4d.train.plot import SIZE


def write_log(run, steps=20):
    run.mkdir()
    lines = [json.dumps({"step": s, "loss": 5.7 * 0.9 ** s, "sft": 4.0 * 0.85 ** s, "ld": 1.0 / s,
                         "lr/llm": 2e-3 * min(1.0, s / 2), "step_time": 0.1}) for s in range(1, steps + 1)]
    (run / "log.jsonl").write_text("\n".join(lines) + "\n{\"step\": 21, \"lo")  # a torn last line is ignored


def test_plot_writes_a_png_of_the_expected_size_that_is_not_blank(tmp_path):
    run = tmp_path / "run"
    write_log(run)
    result = CliRunner().invoke(app, ["train", "plot", str(run)])
    assert result.exit_code == 0, result.output + repr(result.exception)
    png = run / "loss.png"
    assert result.output.strip() == f"wrote {png}"
    image = Image.open(png)
    assert image.format == "PNG" and image.size == SIZE
    pixels = np.asarray(image.convert("RGB")).reshape(-1, 3)
    assert pixels.std() > 10                                  # not one flat colour
    assert len(np.unique(pixels, axis=0)) > 50                # lines, text, legend: many colours
    # the curves are drawn in matplotlib's default cycle: C0 (loss) and C1 (sft) are in the picture
    for colour in ((0x1f, 0x77, 0xb4), (0xff, 0x7f, 0x0e)):
        assert (np.abs(pixels.astype(int) - colour).sum(axis=1) < 30).sum() > 100


def test_plot_to_another_file_and_refusals(tmp_path):
    run = tmp_path / "run"
    write_log(run, steps=3)
    out = tmp_path / "figs" / "curves.png"
    assert CliRunner().invoke(app, ["train", "plot", str(run), str(out)]).exit_code == 0
    assert Image.open(out).size == SIZE
    empty = tmp_path / "empty"
    empty.mkdir()
    result = CliRunner().invoke(app, ["train", "plot", str(empty)])
    assert isinstance(result.exception, ConfigError) and "no log.jsonl there" in str(result.exception)
    (empty / "log.jsonl").write_text("")
    result = CliRunner().invoke(app, ["train", "plot", str(empty)])
    assert "holds no logged step yet" in str(result.exception)
