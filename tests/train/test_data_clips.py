"""Issue 27: a record without "clip" trains every done clip of its video; "clip": k only that clip;
a partial cache gives one "cache N/M clips done" headline, not one log line per pending record."""

import json
import logging

from p4d.cache_schema import VideoEntry, create_store, write_shard
from p4d.train.data import build_samples
from tests.cache_schema.conftest import tiny_spec
from tests.cache_schema.helpers import shard_arrays
from tests.train.conftest import record, write_jsonl


def partial_store(tmp_path):
    """a.mp4: 3 clips (global 0-2), b.mp4: 2 clips (3-4); S=2 -> shards {0,1} {2,3} {4}.
    Shards 0 and 2 written: done = 0, 1, 4; pending = 2, 3."""
    videos = []
    for name, clips in (("a.mp4", 3), ("b.mp4", 2)):
        (tmp_path / name).write_bytes(name.encode())  # build_samples only checks that the file exists
        videos.append(VideoEntry(path=str(tmp_path / name), size_bytes=5, content_hash="", fps=24.0, duration=2.0,
                                 num_frames=48, width=64, height=48, rotation=0, num_clips=clips))
    store = create_store(str(tmp_path / "cache.zarr"), tiny_spec(), videos)
    for shard in (0, 2):
        write_shard(store, shard, shard_arrays(store, shard))
    return store


def test_records_without_clip_train_every_done_clip(tmp_path, caplog):
    store = partial_store(tmp_path)
    data = write_jsonl(tmp_path / "d.jsonl", [
        record("a.mp4", rid="a-all"),                # clips 0, 1 (2 pending: not trained)
        record("b.mp4", rid="b-all"),                # clip 4 (3 pending)
        record("a.mp4", rid="a-1", clip=1),          # clip 1 only
        record("a.mp4", rid="a-2", clip=2),          # pending: skipped
        record("b.mp4", rid="b-0", clip=0),          # pending: skipped
    ])
    with caplog.at_level(logging.INFO, logger="p4d.train.data"):
        samples, report = build_samples(data, store)

    assert sorted((s.record_id, s.clip) for s in samples) == [("a-1", 1), ("a-all", 0), ("a-all", 1), ("b-all", 4)]
    assert [s.shard for s in samples if s.record_id == "a-all"] == [0, 0]
    assert dict(report.clips) == {"all_clip_records": 2, "all_clip_samples": 3, "all_clip_not_done": 2,
                                  "one_clip_records": 3}
    assert dict(report.skipped) == {"pending_clip": 2} and dict(report.kinds) == {"video": 4}
    assert report.cache == {"clips": 5, "done": 3, "failed": 0, "pending": 2}
    saved = json.loads(json.dumps(report.to_dict()))   # what the trainer writes to data_report.json
    assert saved["clips"]["all_clip_samples"] == 3 and saved["cache"]["done"] == 3
    assert len(saved["examples"]["pending_clip"]) == 2

    # one warning (the headline), no per-record skip line for the pending records
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1
    assert warnings[0].startswith("cache 3/5 clips done (2 pending, 0 failed); 2 record(s) wait on pending clips")
    assert "data_report.json" in warnings[0]


def test_complete_cache_has_no_headline(tmp_path, caplog):
    store = partial_store(tmp_path)
    from p4d.cache_schema import open_store

    for shard in (1,):
        write_shard(open_store(store.url, mode="r+"), shard, shard_arrays(store, shard))
    data = write_jsonl(tmp_path / "d.jsonl", [record("a.mp4", rid="a-all"), record("b.mp4", rid="b-all")])
    with caplog.at_level(logging.WARNING, logger="p4d.train.data"):
        samples, report = build_samples(data, open_store(store.url))
    assert [s.clip for s in samples] == [0, 1, 2, 3, 4]
    assert report.cache_headline() is None and not caplog.records
    assert report.clips["all_clip_not_done"] == 0
