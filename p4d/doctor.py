"""``p4d doctor``: the environment on one screen, to paste into a bug report (as ``accelerate env``).

Sections: versions (Python, p4d and the packages it runs on), devices (CPU cores, memory, CUDA
GPUs), the optional extras of setup.cfg and whether each is installed, Chromium (the headless
browser the ``p4d inspect`` HTML tests load pages in; skipped without it), dask (versions and the
local cluster precompute would start) and, given a STORE, its schema: version, who wrote it,
teacher, clips by status, codec. Nothing here fails: what cannot be found is reported as such.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
import sys
from importlib import metadata

#: distributions whose versions are reported (in this order); absent ones say "not installed"
PACKAGES = ("torch", "transformers", "peft", "numpy", "zarr", "numcodecs", "dask", "distributed", "av",
            "safetensors", "pillow", "matplotlib", "fsspec", "typer")
_REQUIREMENT = re.compile(r"^([A-Za-z0-9_.\-]+)(\[[^\]]*\])?")


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def extras() -> dict[str, list[tuple[str, str | None]]]:
    """{extra: [(distribution, installed version or None)]} from p4d's own metadata (setup.cfg)."""
    try:
        requires = metadata.requires("p4d") or []
    except metadata.PackageNotFoundError:
        return {}
    out: dict[str, list[tuple[str, str | None]]] = {}
    for req in requires:
        name, _, marker = req.partition(";")
        found = re.search(r'extra\s*==\s*"([^"]+)"', marker)
        if found:
            dist = _REQUIREMENT.match(name.strip()).group(1)
            out.setdefault(found.group(1), []).append((dist, _version(dist)))
    return out


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        return "not found (the inspect HTML browser tests are skipped without it)"
    try:
        text = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=20).stdout.strip()
    except (OSError, subprocess.SubprocessError) as exc:
        text = f"version unknown ({type(exc).__name__})"
    return f"{text or 'version unknown'} ({path})"


def _memory_gib() -> str:
    try:
        import psutil

        return f"{psutil.virtual_memory().total / 2**30:.1f} GiB"
    except ImportError:
        return "unknown"


def devices() -> list[str]:
    import torch

    lines = [f"cpu: {os.cpu_count()} cores, {_memory_gib()} memory, torch threads {torch.get_num_threads()}"]
    if not torch.cuda.is_available():
        lines.append(f"cuda: not available (torch built with CUDA {torch.version.cuda or 'none'})")
    for i in range(torch.cuda.device_count()):
        p = torch.cuda.get_device_properties(i)
        lines.append(f"cuda:{i}: {p.name}, {p.total_memory / 2**30:.1f} GiB, compute capability {p.major}.{p.minor}")
    return lines


def dask_lines() -> list[str]:
    from p4d.precompute.cluster import local_cluster_size

    workers, gpus = local_cluster_size(None, "auto")
    pinned = f", one per GPU ({gpus})" if gpus else ", CPU"
    return [f"dask {_version('dask')}, distributed {_version('distributed')}, dask-cuda {_version('dask-cuda') or 'not installed'}",
            f"local cluster of `p4d precompute`: {workers} worker(s){pinned}, listening on 127.0.0.1"]


def store_lines(url: str) -> list[str]:
    from p4d.cache_schema import open_store
    from p4d.cache_schema.labels import teacher_label
    from p4d.cache_schema.spec import READABLE_SCHEMA_VERSIONS, SCHEMA_VERSION
    from p4d.errors import P4DError

    try:
        store = open_store(url, check=False)
    except (P4DError, OSError) as exc:
        return [f"{url}: cannot open ({exc})"]
    attrs, spec, counts = store.attrs, store.spec, store.status()
    version = attrs.get("schema_version")
    state = ("current" if version == SCHEMA_VERSION else
             "readable, read-only" if version in READABLE_SCHEMA_VERSIONS else "NOT readable by this p4d")
    return [f"{url}: schema v{version} ({state}; this p4d writes v{SCHEMA_VERSION}), written by p4d "
            f"{attrs.get('p4d_version', '?')}",
            f"  {teacher_label(spec)}; taps {list(spec.taps)}; N={spec.num_frames}, policy "
            f"{spec.sampling.get('policy')}; codec {spec.latent_codec}",
            f"  {counts['total']} clips: {counts['done']} done, {counts['pending']} pending, {counts['failed']} failed; "
            f"{store.num_shards} shards of S={spec.clips_per_shard}"]


def doctor_report(store: str | None = None) -> str:
    """The text of ``p4d doctor [STORE]``."""
    lines = [f"p4d {_version('p4d') or '(not installed)'} from {os.path.dirname(os.path.dirname(__file__))}",
             f"python {platform.python_version()} ({sys.executable}), {platform.platform()}", "", "versions:"]
    versions = [f"{name} {_version(name) or 'not installed'}" for name in PACKAGES]
    lines += ["  " + ", ".join(versions[i:i + 5]) for i in range(0, len(versions), 5)]
    lines += ["", "devices:"] + [f"  {line}" for line in devices()]
    lines += ["", "extras (pip install 'p4d[NAME]'):"]
    found = extras()
    for name, dists in found.items():
        missing = [d for d, v in dists if v is None]
        state = "installed" if not missing else f"not installed (missing {', '.join(missing)})"
        lines.append(f"  {name:12s} {state}: " + ", ".join(f"{d} {v or '-'}" for d, v in dists))
    if not found:
        lines.append("  unknown (p4d is not installed as a package; pip install -e .)")
    lines += ["", f"chromium: {chromium()}", "", "dask:"] + [f"  {line}" for line in dask_lines()]
    if store is not None:
        lines += ["", "store:"] + [f"  {line}" for line in store_lines(store)]
    return "\n".join(lines)
