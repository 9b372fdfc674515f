"""A damaged cache in training: the loader fails only the samples whose clips are damaged (a
deleted shard file, a flipped byte), and the trainer's batches report them; never wrong targets."""

import shutil

import numpy as np
import pytest

from p4d.cache_schema import open_store
from p4d.train.data import build_samples
from p4d.train.loader import ClipDataset, Collate
from p4d.train.model import build_tiny_tokenizer, student_preset

MAPS = ("f4d", "depth", "flow", "motion", "camray")


@pytest.fixture(scope="module")
def tiny():
    return student_preset("tiny"), build_tiny_tokenizer()


def test_damaged_clips_fail_their_samples_only(train_cache, conversations, tiny, tmp_path):
    copy = tmp_path / "cache.zarr"
    shutil.copytree(train_cache.store, copy)
    store = open_store(str(copy))
    samples, _ = build_samples(conversations, store)
    cfg, tok = tiny
    clean = ClipDataset(samples, open_store(train_cache.store), student=cfg, tokenizer=tok, targets=MAPS)
    # shard 1 (clips 2, 3): its latents/f4d file deleted; shard 2 (clips 4, 5): one byte of clip 5's depth flipped
    (copy / "latents" / "f4d" / "c" / "1" / "0" / "0" / "0" / "0" / "0").unlink()
    depth = copy / "maps" / "depth" / "c" / "2" / "0" / "0" / "0" / "0"
    data = bytearray(depth.read_bytes())
    data[len(data) - 200] ^= 0x01  # inside the last chunk's bytes: clip 5
    depth.write_bytes(bytes(data))
    ds = ClipDataset(samples, store, student=cfg, tokenizer=tok, targets=MAPS)
    keys = [(i, 0) for i in range(len(samples))]
    items = ds.__getitems__(keys)
    damaged = {2, 3, 5}
    failed = {samples[k].clip for k, item in enumerate(items) if "error" in item}
    assert failed == {s.clip for s in samples if s.clip in damaged} and failed
    for k, item in enumerate(items):
        if "error" in item:
            assert f"clip {samples[k].clip} of" in item["error"]
        else:
            want = clean[keys[k]]
            for name in MAPS:
                np.testing.assert_array_equal(item["targets"][name], want["targets"][name])
    batch = Collate(pad_id=0)(items)
    assert len(batch["errors"]) == sum(s.clip in damaged for s in samples)
    assert batch["size"] == len(samples) - len(batch["errors"])
