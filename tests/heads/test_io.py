"""save_heads / load_heads / bytes: round trips, frozen heads, clear errors."""

import dataclasses
import json

import pytest
import safetensors.torch
import torch

from p4d.errors import CheckpointError
from p4d.heads import (
    TINY_HEADS,
    DenseHeads,
    HeadsFileNotFoundError,
    heads_from_bytes,
    heads_to_bytes,
    load_heads,
    read_heads_config,
    save_heads,
)

CFG = dataclasses.replace(TINY_HEADS, modalities=("depth", "camray"))


@pytest.fixture(scope="module")
def heads():
    torch.manual_seed(0)
    return DenseHeads(CFG).eval()


@pytest.fixture(scope="module")
def f4d():
    # batch 2: PyTorch runs tiny batch-1 Conv3d on its slow native path (a CPU backend heuristic)
    return torch.randn(2, 4, 8, 8, 8, 64, generator=torch.Generator().manual_seed(1))


def test_round_trip_directory_file_and_bytes_give_identical_outputs(heads, f4d, tmp_path):
    with torch.no_grad():
        want = heads(f4d)
    written = save_heads(heads, tmp_path / "store")
    assert written == tmp_path / "store" / "heads.safetensors" and written.is_file()
    save_heads(heads, tmp_path / "x" / "d.safetensors")
    for loaded in (
        load_heads(tmp_path / "store"),
        load_heads(written),
        load_heads(str(tmp_path / "x" / "d.safetensors")),
        heads_from_bytes(heads_to_bytes(heads)),
        load_heads(written.read_bytes()),
    ):
        assert loaded.cfg == CFG and tuple(loaded.heads) == CFG.modalities
        with torch.no_grad():
            got = loaded(f4d)
        for m in want:
            assert torch.equal(got[m], want[m]), m
    assert read_heads_config(tmp_path / "store") == CFG
    # the metadata is plain JSON, readable without p4d
    with open(written, "rb") as fh:
        n = int.from_bytes(fh.read(8), "little")
        meta = json.loads(fh.read(n))["__metadata__"]
    assert json.loads(meta["heads_config"])["modalities"] == ["depth", "camray"]


def test_frozen_heads_pass_gradients_to_the_input(heads, f4d):
    loaded = heads_from_bytes(heads_to_bytes(heads))
    assert not loaded.training and not any(p.requires_grad for p in loaded.parameters())
    x = f4d.clone().requires_grad_(True)
    out = loaded(x)
    (out["depth"].log().mean() + out["camray"].abs().mean()).backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    trainable = heads_from_bytes(heads_to_bytes(heads), frozen=False)
    assert trainable.training and all(p.requires_grad for p in trainable.parameters())


def test_dtype_override(heads):
    half = load_heads(heads_to_bytes(heads), dtype=torch.bfloat16)
    assert {p.dtype for p in half.parameters()} == {torch.bfloat16}
    back = load_heads(heads_to_bytes(half))  # stored dtype is kept when none is asked for
    assert {p.dtype for p in back.parameters()} == {torch.bfloat16}


def test_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="heads.safetensors"):
        load_heads(tmp_path / "nowhere")
    with pytest.raises(HeadsFileNotFoundError):
        load_heads(tmp_path / "nowhere.safetensors")


def test_garbage_and_foreign_files_are_checkpoint_errors(heads, tmp_path):
    with pytest.raises(CheckpointError, match="not a readable safetensors"):
        load_heads(b"definitely not safetensors")
    plain = safetensors.torch.save({"w": torch.zeros(2)})
    with pytest.raises(CheckpointError, match="format='p4d.heads'"):
        load_heads(plain)
    sd = {k: v.contiguous() for k, v in heads.state_dict().items()}
    bad_cfg = safetensors.torch.save(sd, metadata={"format": "p4d.heads", "format_version": "1",
                                                   "heads_config": json.dumps({"embed_dim": -3})})
    with pytest.raises(CheckpointError, match="embed_dim"):
        load_heads(bad_cfg)


def test_missing_and_unexpected_keys_are_listed(heads):
    data = heads_to_bytes(heads)
    tensors = safetensors.torch.load(data)
    n = int.from_bytes(data[:8], "little")
    meta = json.loads(data[8 : 8 + n])["__metadata__"]
    del tensors["heads.camray.dpt.head2.2.weight"]
    tensors["heads.camray.dpt.head3.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointError, match=r"missing keys \(1\): heads.camray.dpt.head2.2.weight.*"
                                              r"unexpected keys \(1\): heads.camray.dpt.head3.weight"):
        load_heads(safetensors.torch.save(tensors, metadata=meta))
