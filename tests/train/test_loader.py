"""The loader: frames at the stored indices, targets per clip, marks, flips, shard-then-clip
batches (deterministic, rank slices, resumable), spawn workers, failures dropped not raised."""

import shutil
from types import SimpleNamespace

import numpy as np
import torch
import pytest

from p4d.cache_schema import open_store, read_clip
from p4d.train.data import Sample, build_samples
from p4d.train.loader import ClipDataset, Collate, ShardBatchSampler, make_loader
from p4d.train.model import build_tiny_tokenizer, special_ids, student_preset
from PIL import Image

from p4d.video import sample_clip
from tests.train.conftest import record, write_jsonl

MAPS = ("f4d", "depth", "flow", "motion", "camray")


@pytest.fixture(scope="module")
def tiny():
    cfg = student_preset("tiny")
    return cfg, build_tiny_tokenizer()


def _dataset(train_cache, data, tiny, **kwargs):
    store = open_store(train_cache.store)
    samples, _ = build_samples(data, store)
    cfg, tok = tiny
    return ClipDataset(samples, store, student=cfg, tokenizer=tok, **kwargs), samples


def test_video_sample_matches_an_independent_decode(train_cache, conversations, tiny):
    ds, samples = _dataset(train_cache, conversations, tiny, targets=MAPS)
    s = samples[2]                                       # v2: cache clip 3
    item = ds[(2, 0)]
    store = open_store(train_cache.store)
    cached = read_clip(store, s.clip)
    # uniform sampling of the whole video, decoded by another path, at the student's size
    reference = sample_clip(s.media[0], num_frames=16, policy="uniform")
    np.testing.assert_array_equal(reference.frame_index, cached["frame_index"])
    # squashed to the student's 56 x 56 by Pillow bicubic (the release's Image.resize default)
    want = np.stack([np.asarray(Image.fromarray(f).resize((56, 56), Image.Resampling.BICUBIC)) for f in reference.frames])
    np.testing.assert_array_equal(item["frames"], want)
    np.testing.assert_allclose(item["timestamps"], reference.timestamp, atol=1e-6)
    for k in MAPS:
        np.testing.assert_array_equal(item["targets"][k], cached[k])
    # the token ids hold N frames × h·w video tokens
    cfg, tok = tiny
    assert item["ids"]["input_ids"].count(special_ids(tok, cfg).video) == 16 * 4


def test_marks_on_frame_zero_only(train_cache, tiny, tmp_path):
    region = {"label": "obj_1", "box": [8, 8, 60, 50]}
    video = str(train_cache.videos / "v1.mp4")
    ds_plain, _ = _dataset(train_cache, write_jsonl(tmp_path / "plain.jsonl", [record(video)]), tiny)
    ds_mark, _ = _dataset(train_cache, write_jsonl(tmp_path / "marked.jsonl", [record(video, regions=[region])]), tiny)
    f0, f1 = ds_plain[(0, 0)]["frames"], ds_mark[(0, 0)]["frames"]
    assert np.abs(f0[0].astype(int) - f1[0].astype(int)).max() > 100   # the outline / tag changed frame 0
    np.testing.assert_array_equal(f0[1:], f1[1:])


def test_flip_replays_frames_and_maps(train_cache, conversations, tiny):
    plain, _ = _dataset(train_cache, conversations, tiny, targets=("depth", "flow", "camray"))
    flipped, _ = _dataset(train_cache, conversations, tiny, targets=("depth", "flow", "camray"), hflip=1.0)
    a, b = plain[(0, 0)], flipped[(0, 0)]
    assert b["flipped"] and not a["flipped"]
    assert np.abs(b["frames"].astype(int) - a["frames"][:, :, ::-1].astype(int)).max() <= 1  # resize ∘ flip
    np.testing.assert_array_equal(b["targets"]["depth"], a["targets"]["depth"][:, :, ::-1])
    np.testing.assert_array_equal(b["targets"]["flow"][..., 0], -a["targets"]["flow"][:, :, ::-1, 0])
    np.testing.assert_array_equal(b["targets"]["camray"][..., 4], -a["targets"]["camray"][:, :, ::-1, 4])


def _samples(shards: list[int], extra_images: int = 0) -> list[Sample]:
    out = [Sample(kind="video", record_id=str(i), turns=(("q", "a"),), media=("v",), clip=i, shard=s, num_frames=4)
           for i, s in enumerate(shards)]
    out += [Sample(kind="image", record_id=f"im{k}", turns=(("q", "a"),), media=("i",), clip=-1, shard=-1,
                   num_frames=1) for k in range(extra_images)]
    return out


def test_sampler_shard_then_clip_order_and_determinism():
    shards = [k // 4 for k in range(24)]                 # 6 shards of 4 clips
    samples = _samples(shards, extra_images=4)
    a = ShardBatchSampler(samples, batch_size=2, seed=5)
    b = ShardBatchSampler(samples, batch_size=2, seed=5)
    assert a.epoch_batches(0) == b.epoch_batches(0)
    orders = {tuple(map(tuple, a.epoch_batches(e))) for e in range(4)}
    assert len(orders) == 4                              # every epoch reshuffles
    for e in range(4):
        batches = a.epoch_batches(e)
        flat = [i for batch in batches for i in batch]
        assert sorted(flat) == list(range(28))           # every sample once (28 = 14 batches of 2)
        assert all(len({samples[i].bucket for i in batch}) == 1 for batch in batches)   # one bucket per batch
        video_shards = [samples[i].shard for i in flat if samples[i].shard >= 0]
        changes = sum(x != y for x, y in zip(video_shards, video_shards[1:]))
        assert changes == 5                               # each shard's clips read contiguously


def test_sampler_rank_slices_and_resume():
    samples = _samples([k // 2 for k in range(12)])
    single = ShardBatchSampler(samples, batch_size=2, world_size=1, seed=1)     # 1 process, batch 2
    ranks = [ShardBatchSampler(samples, batch_size=1, world_size=2, rank=r, seed=1) for r in (0, 1)]
    # 2 processes of batch 1 see, step by step, exactly the pair the single process sees
    for pair, r0, r1 in zip(single, *ranks):
        assert pair == r0 + r1
    assert len(list(single)) == 6
    # resuming at (epoch 0, batch 2) yields the rest of the epoch
    full = list(ShardBatchSampler(samples, batch_size=2, seed=1))
    resumed = ShardBatchSampler(samples, batch_size=2, seed=1)
    resumed.load_state_dict({"epoch": 0, "batch": 2})
    assert list(resumed) == full[2:]
    assert len(resumed) == len(full) - 2


def test_endless_sampler_runs_on_through_epochs_and_tracks_its_position():
    """Endless = each epoch's one-epoch iteration, back to back, from the resumed position;
    advance() after each consumed batch lands where a fresh one-epoch sampler would resume."""
    from itertools import islice

    samples = _samples([k // 2 for k in range(10)])      # 5 batches of 2 per epoch
    per_epoch = []
    for e in range(4):
        one = ShardBatchSampler(samples, batch_size=2, seed=7)
        one.epoch = e
        per_epoch.append(list(one))
    flat = [b for epoch in per_epoch for b in epoch]
    endless = ShardBatchSampler(samples, batch_size=2, seed=7, endless=True)
    endless.load_state_dict({"epoch": 0, "batch": 3})
    taken = list(islice(iter(endless), 12))
    assert taken == flat[3:15]
    for _ in taken:
        endless.advance()
    assert endless.state_dict()["epoch"] == 3 and endless.state_dict()["batch"] == 0      # 3 + 12 = 15 = 3 epochs
    assert [b[0][1] for b in taken] == [0, 0] + [1] * 5 + [2] * 5                        # keys carry their epoch
    end = ShardBatchSampler(samples, batch_size=2, seed=7)
    end.load_state_dict({"epoch": 1, "batch": 5})                                        # past the last batch
    assert (end.epoch, end.start) == (2, 0) and list(end) == per_epoch[2]


def test_spawned_workers_give_the_same_batches(train_cache, conversations, tiny):
    ds, samples = _dataset(train_cache, conversations, tiny, targets=("f4d", "depth"))
    cfg, tok = tiny
    pad = special_ids(tok, cfg).pad
    runs = []
    for workers in (0, 1):
        sampler = ShardBatchSampler(samples, batch_size=2, seed=3)
        runs.append([b for b in make_loader(ds, sampler, pad_id=pad, num_workers=workers)])
    assert len(runs[0]) == len(runs[1]) == 2
    for x, y in zip(*runs):
        assert x["indices"] == y["indices"]
        for key in ("frames", "timestamps", "input_ids", "labels"):
            assert (x[key] == y[key]).all()
        assert (x["targets"]["f4d"] == y["targets"]["f4d"]).all()


def test_failed_loads_are_dropped_and_reported(train_cache, tiny, tmp_path):
    video = tmp_path / "v4copy.mp4"
    shutil.copy(train_cache.videos / "v4.mp4", video)
    data = write_jsonl(tmp_path / "doomed.jsonl", [record(str(video), rid="doomed"), record(str(train_cache.videos / "v0.mp4"))])
    ds, samples = _dataset(train_cache, data, tiny)
    assert [s.kind for s in samples] == ["video", "video"]   # joined by content
    video.unlink()                                            # gone after the join, before loading
    cfg, tok = tiny
    batch = Collate(special_ids(tok, cfg).pad)([ds[(0, 0)], ds[(1, 0)]])
    assert batch["size"] == 1 and len(batch["errors"]) == 1
    assert "doomed" in batch["errors"][0] and "v4copy.mp4" in batch["errors"][0]
    assert tuple(batch["frames"].shape) == (1, 16, 56, 56, 3)


def _same_item(x, y):
    assert x.keys() == y.keys()
    np.testing.assert_array_equal(x["frames"], y["frames"])
    np.testing.assert_array_equal(x["timestamps"], y["timestamps"])
    assert x["ids"] == y["ids"] and x["flipped"] == y["flipped"]
    assert x["targets"].keys() == y["targets"].keys()
    for k in x["targets"]:
        np.testing.assert_array_equal(x["targets"][k], y["targets"][k])


def test_batched_fetch_equals_one_sample_at_a_time(train_cache, conversations, tiny):
    keys = [(0, 0), (3, 1), (1, 2), (0, 5)]
    for kwargs in (dict(targets=MAPS), dict(targets=MAPS[1:], hflip=0.5, seed=3)):  # no flips with F_4D
        ds, _ = _dataset(train_cache, conversations, tiny, **kwargs)
        items = ds.__getitems__(keys)
        assert not any("error" in item for item in items)
        for batched, single in zip(items, [ds[k] for k in keys]):
            _same_item(batched, single)
    assert any(item["flipped"] for item in items) and not all(item["flipped"] for item in items)


def test_batched_fetch_with_a_torn_shard_reports_only_that_sample(train_cache, conversations, tiny, tmp_path):
    """The batch read fails on one clip's torn map shard: the other samples still load."""
    copy = tmp_path / "cache.zarr"
    shutil.copytree(train_cache.store, copy)
    store = open_store(str(copy))
    samples, _ = build_samples(conversations, store)
    cfg, tok = tiny
    ds = ClipDataset(samples, store, student=cfg, tokenizer=tok, targets=MAPS)
    torn = next(i for i, s in enumerate(samples) if s.clip == 2)  # shard 1 holds clips 2 and 3
    good = next(i for i, s in enumerate(samples) if s.clip == 4)  # shard 2
    shard_file = copy / "maps" / "flow" / "c" / "1" / "0" / "0" / "0" / "0"
    shard_file.write_bytes(shard_file.read_bytes()[: shard_file.stat().st_size // 2])
    torn_item, good_item = ds.__getitems__([(torn, 0), (good, 0)])
    assert "maps/flow of shard 1 is unreadable" in torn_item["error"]
    _same_item(good_item, ClipDataset(samples, open_store(train_cache.store), student=cfg, tokenizer=tok,
                                      targets=MAPS)[(good, 0)])


@pytest.mark.parametrize("hflip", [0.0, 1.0])
def test_device_decode_batches_equal_host_decode(train_cache, conversations, tiny, hflip):
    """Targets handed over as stored and decoded by torch (the CUDA path, here on CPU tensors)
    equal the host's float32 decode bit for bit, flipped too (a quant16 map is flipped in code space before the device decode)."""
    from p4d.train.device_decode import decode_target_parts

    targets = MAPS if not hflip else MAPS[1:]  # F_4D does not mirror: a flip is refused with it
    host, samples = _dataset(train_cache, conversations, tiny, targets=targets, hflip=hflip)
    dev, _ = _dataset(train_cache, conversations, tiny, targets=targets, decode_on_device=True, hflip=hflip)
    keys = [(k, 0) for k, s in enumerate(samples) if s.kind == "video"][:3]
    collate = Collate(pad_id=0)
    a, b = collate(host.__getitems__(keys)), collate(dev.__getitems__(keys))
    assert a["target_codec"] is None and b["target_codec"] == open_store(train_cache.store).spec.latent_codec
    assert "f4d" not in targets or b["targets"]["f4d"].dtype.is_floating_point is False
    assert b["targets"]["depth"].dtype == torch.int16 and b["targets"]["depth_quant"].shape == (len(keys), 2, 1)
    decoded = decode_target_parts(b["target_codec"], b["targets"])
    assert set(decoded) == set(targets)
    for k in targets:
        assert torch.equal(decoded[k], a["targets"][k]), k


def test_sample_longer_than_max_length_is_dropped_with_its_reason(train_cache, conversations, tiny):
    # 16 frames x (2x2 + 1) tokens = 80 video-block ids alone: 60 is too short, 10_000 is not
    short, _ = _dataset(train_cache, conversations, tiny, max_length=60)
    item = short[(0, 0)]
    assert "exceed --data.max-length 60" in item["error"]
    long, _ = _dataset(train_cache, conversations, tiny, max_length=10_000)
    assert "error" not in long[(0, 0)]


def test_train_and_eval_give_the_student_identical_pixels(train_cache, tiny, tmp_path):
    """The loader's frames (training) and raw decoded frames given to the model (eval, export) reach
    E_v as the same tensor: one resize (p4d.video.student_frames) on both paths, marks drawn before it."""
    from p4d.eval.items import RegionSpec
    from p4d.eval.run import item_frames
    from p4d.train.model.vision import preprocess_frames

    region = {"label": "obj_1", "box": [8, 8, 60, 50]}
    video = str(train_cache.videos / "v1.mp4")
    ds, samples = _dataset(train_cache, write_jsonl(tmp_path / "m.jsonl", [record(video, regions=[region])]), tiny)
    train = ds[(0, 0)]["frames"]
    eval_item = SimpleNamespace(video=video, regions=(RegionSpec(label="obj_1", box=(8, 8, 60, 50)),),
                                fallback_video=None)
    raw, _, index = item_frames(eval_item, 16)
    np.testing.assert_array_equal(index, read_clip(open_store(train_cache.store), samples[0].clip)["frame_index"])
    assert raw.shape[1:3] != train.shape[1:3]  # eval hands native-size frames to the model
    cfg, _ = tiny
    a = preprocess_frames(torch.from_numpy(train)[None], cfg)
    b = preprocess_frames(torch.from_numpy(raw)[None], cfg)
    assert torch.equal(a, b)
