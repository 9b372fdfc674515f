"""Peer storage formats for cached teacher targets, one file per clip, as other projects do it.

* ``npz-fp16``: ``np.savez_compressed`` of float16 arrays per clip (how 3DRS caches VGGT features).
* ``safetensors-bf16``: bfloat16 safetensors per clip (how Theia stores teacher features in its shards).
* ``npy-fp32``: raw float32 ``.npy`` per clip (the uncompressed reference).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

Clip = dict[str, np.ndarray]


def _write_npz(path: Path, clip: Clip) -> None:
    np.savez_compressed(path, **{k: (v.astype(np.float16) if v.dtype.kind == "f" else v) for k, v in clip.items()})


def _read_npz(path: Path) -> Clip:
    with np.load(path) as z:
        return {k: z[k].astype(np.float32) if z[k].dtype.kind == "f" else z[k] for k in z.files}


def _write_safetensors(path: Path, clip: Clip) -> None:
    import torch
    from safetensors.torch import save_file

    save_file({k: (torch.from_numpy(np.ascontiguousarray(v)).bfloat16() if v.dtype.kind == "f" else torch.from_numpy(v))
               for k, v in clip.items()}, str(path))


def _read_safetensors(path: Path) -> Clip:
    from safetensors.torch import load_file

    return {k: (v.float().numpy() if v.is_floating_point() else v.numpy()) for k, v in load_file(str(path)).items()}


def _write_npy(path: Path, clip: Clip) -> None:
    path.mkdir(parents=True, exist_ok=True)
    for k, v in clip.items():
        np.save(path / f"{k}.npy", v.astype(np.float32) if v.dtype.kind == "f" else v)


def _read_npy(path: Path) -> Clip:
    return {p.stem: np.load(p) for p in sorted(path.glob("*.npy"))}


# name -> (file suffix, writer, reader)
PEER_FORMATS: dict[str, tuple[str, Callable[[Path, Clip], None], Callable[[Path], Clip]]] = {
    "npz-fp16": (".npz", _write_npz, _read_npz),
    "safetensors-bf16": (".safetensors", _write_safetensors, _read_safetensors),
    "npy-fp32": (".npy.d", _write_npy, _read_npy),
}


def clip_path(folder: Path, fmt: str, i: int) -> Path:
    return Path(folder) / f"clip-{i:06d}{PEER_FORMATS[fmt][0]}"


def write_peer(folder: Path, fmt: str, clips: list[Clip]) -> list[Path]:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = [clip_path(folder, fmt, i) for i in range(len(clips))]
    for p, c in zip(paths, clips):
        PEER_FORMATS[fmt][1](p, c)
    return paths


def read_peer(path: Path, fmt: str) -> Clip:
    return PEER_FORMATS[fmt][2](Path(path))
