"""Bench reports: machine info, JSON, markdown with PNG plots."""

from __future__ import annotations

import os
import platform
from importlib import metadata
from pathlib import Path

from p4d.bench.harness import BenchResult, Row, format_table, results_to_json

PACKAGES = ("p4d", "torch", "numpy", "zarr", "numcodecs", "dask", "distributed", "av", "transformers", "safetensors")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _ram_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def machine_info() -> dict:
    """CPU, cores, RAM, GPU and package versions of this machine."""
    info = {
        "cpu": _cpu_model(), "cores": os.cpu_count(), "ram_gib": _ram_gib(),
        "python": platform.python_version(), "platform": platform.platform(), "gpu": None,
        "packages": {},
    }
    for pkg in PACKAGES:
        try:
            info["packages"][pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    try:
        import torch

        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return info


def describe_machine(info: dict) -> str:
    gpu = info.get("gpu") or "no GPU"
    return f"{info['cpu']}, {info['cores']} cores, {info['ram_gib']} GiB RAM, {gpu}"


def _value(row: Row, key: str) -> float:
    if key in ("candidate", "baseline", "ratio"):
        return getattr(row, key)
    return row.extra[key]


def plot_result(result: BenchResult, path: Path) -> Path | None:
    """A PNG of the result's rows as its ``plot`` spec says; None when it has none."""
    spec = result.plot
    if not spec or not result.rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=110)
    rows = [r for r in result.rows if spec["x"] in r.extra or spec["x"] in ("candidate", "baseline", "ratio")]
    rows = [r for r in rows if spec["y"] in r.extra or spec["y"] in ("candidate", "baseline", "ratio")]
    group = spec.get("group")
    if group:
        series: dict[str, list[Row]] = {}
        for r in rows:
            series.setdefault(str(r.extra.get(group, r.entry)), []).append(r)
        for name, rs in series.items():
            rs = sorted(rs, key=lambda r: _value(r, spec["x"]))
            ax.plot([_value(r, spec["x"]) for r in rs], [_value(r, spec["y"]) for r in rs], marker="o", label=name)
        ax.legend(fontsize=8)
    else:
        for r in rows:
            x, y = _value(r, spec["x"]), _value(r, spec["y"])
            ax.scatter([x], [y])
            ax.annotate(r.entry.split(" vs ")[0], (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
    if spec.get("logx"):
        ax.set_xscale("log")
    ax.set_xlabel(spec.get("xlabel", spec["x"]))
    ax.set_ylabel(spec.get("ylabel", spec["y"]))
    ax.set_title(f"p4d bench {result.name} --size {result.size}", fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def write_report(results: list[BenchResult], out_dir: str | Path, machine: dict | None = None) -> dict[str, Path]:
    """Write ``bench.json``, ``report.md`` and one PNG per plotted result into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    machine = machine or machine_info()
    paths = {"json": out / "bench.json", "markdown": out / "report.md"}
    paths["json"].write_text(results_to_json(results, machine))
    md = ["# p4d bench report", "", f"Machine: {describe_machine(machine)}", "",
          "Packages: " + ", ".join(f"{k} {v}" for k, v in machine["packages"].items()), ""]
    for res in results:
        md += [f"## {res.name} (--size {res.size})", "", "```", format_table(res), "```", ""]
        png = plot_result(res, out / f"{res.name}-{res.size}.png")
        if png is not None:
            paths[f"plot:{res.name}"] = png
            md += [f"![{res.name}]({png.name})", ""]
    paths["markdown"].write_text("\n".join(md))
    return paths
