"""``p4d train plot RUN``: the loss curves of a run, from ``RUN/log.jsonl``, as a PNG (matplotlib, Agg).

Top panel: the weighted total ``loss`` and each loss term present (``sft``, ``ld``, ``depth``,
``flow``, ``motion``, ``camray``) against the optimizer step, log-scaled when every value is
positive; bottom panel: the learning rate of each parameter group (``lr/<group>``). A resumed run
has each step once (the log is cut back to the checkpoint on resume), so the curves are continuous.
"""

from __future__ import annotations

from pathlib import Path

from p4d.errors import ConfigError

#: what the figure plots, in this order (the total first)
TERMS = ("loss", "sft", "ld", "depth", "flow", "motion", "camray")
PLOT_FILE = "loss.png"
SIZE = (1000, 600)  # width, height in pixels
DPI = 100


def plot_run(run: str | Path, out: str | Path | None = None) -> Path:
    """Write the loss curves of run folder ``run`` to ``out`` (default ``RUN/loss.png``, SIZE pixels)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from p4d.train.logs import LOG_FILE, read_log

    run = Path(run)
    if not (run / LOG_FILE).is_file():
        raise ConfigError(f"p4d train plot {run}: no {LOG_FILE} there; expected a run folder written by `p4d train`")
    records = [r for r in read_log(run) if isinstance(r.get("step"), int)]
    if not records:
        raise ConfigError(f"p4d train plot {run}: {run / LOG_FILE} holds no logged step yet")
    out = Path(out) if out is not None else run / PLOT_FILE
    fig = Figure(figsize=(SIZE[0] / DPI, SIZE[1] / DPI), dpi=DPI)
    FigureCanvasAgg(fig)
    loss_ax, lr_ax = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": (3, 1)})
    positive = True
    for term in TERMS:
        points = [(r["step"], r[term]) for r in records if isinstance(r.get(term), (int, float))]
        if points:
            steps, values = zip(*points)
            loss_ax.plot(steps, values, label=term, linewidth=2.0 if term == "loss" else 1.0)
            positive = positive and min(values) > 0
    if positive and loss_ax.lines:
        loss_ax.set_yscale("log")
    loss_ax.set_ylabel("loss: total (weighted), terms")
    loss_ax.set_title(f"{run.resolve().name}: {len(records)} logged steps, last step {records[-1]['step']}")
    loss_ax.grid(True, alpha=0.3)
    if loss_ax.lines:
        loss_ax.legend(loc="upper right", fontsize=8)
    groups = sorted({k for r in records for k in r if k.startswith("lr/")})
    for key in groups:
        points = [(r["step"], r[key]) for r in records if isinstance(r.get(key), (int, float))]
        lr_ax.plot(*zip(*points), label=key[3:], linewidth=1.0)
    lr_ax.set_xlabel("step")
    lr_ax.set_ylabel("learning rate")
    lr_ax.grid(True, alpha=0.3)
    if groups:
        lr_ax.legend(loc="upper right", fontsize=7)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=DPI)
    return out
