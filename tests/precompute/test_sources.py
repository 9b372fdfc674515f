"""Where precompute finds its videos, and config validation naming the flag to fix."""

import json

import pytest

from p4d.errors import ConfigError
from p4d.precompute.config import PrecomputeConfig
from p4d.precompute.sources import list_videos


def test_folder_list_file_and_conversations(tmp_path):
    (tmp_path / "a").mkdir()
    for name in ("a/x.mp4", "b.MOV", "notes.txt.bak", "c.mkv"):
        (tmp_path / name).write_bytes(b"")
    assert [p.rsplit("/", 1)[1] for p in list_videos(tmp_path)] == ["x.mp4", "b.MOV", "c.mkv"]  # sorted by full path: a/x.mp4 first

    listing = tmp_path / "list.txt"
    listing.write_text("# comment\n\na/x.mp4\n/abs/y.mp4\ns3://bucket/z.mp4\n")
    assert list_videos(listing) == ["/abs/y.mp4", str(tmp_path / "a/x.mp4"), "s3://bucket/z.mp4"]

    records = [{"video": "a/x.mp4", "conversations": []}, {"image": "i.jpg"}, {"video": "a/x.mp4"}, {"video": "v2.mp4"}]
    (tmp_path / "train.json").write_text(json.dumps(records))
    assert list_videos(tmp_path / "train.json") == [str(tmp_path / "a/x.mp4"), str(tmp_path / "v2.mp4")]
    (tmp_path / "train.jsonl").write_text("\n".join(json.dumps(r) for r in records))
    assert list_videos(tmp_path / "train.jsonl", video_root="/data") == ["/data/a/x.mp4", "/data/v2.mp4"]


@pytest.mark.parametrize("content,match", [("{not json", "not valid JSON"), ('{"video": "x"}', "JSON list")])
def test_bad_conversation_file_is_named(tmp_path, content, match):
    bad = tmp_path / "train.json"
    bad.write_text(content)
    with pytest.raises(ConfigError, match=match) as err:
        list_videos(bad)
    assert str(bad) in str(err.value)


def test_missing_or_empty_sources(tmp_path):
    with pytest.raises(ConfigError, match="no such path"):
        list_videos(tmp_path / "nope")
    with pytest.raises(ConfigError, match="names no video files"):
        list_videos(tmp_path)


@pytest.mark.parametrize("kw,flag", [
    ({"dtype": "fp8"}, "--dtype"), ({"device": "tpu"}, "--device"), ({"modalities": ("depth", "normals")}, "--modalities"),
    ({"clips_per_shard": 0}, "--clips-per-shard"), ({"batch_size": 0}, "--batch-size"), ({"shards": (3, 1)}, "--shards"),
    ({"taps": (3, 1, 2, 4)}, "--taps"), ({"scheduler": "tcp://x:1", "workers": 2}, "--workers"),
    ({"force": True, "retry_failed": True}, "--retry-failed"),
])
def test_config_errors_name_the_flag(kw, flag):
    with pytest.raises(ConfigError, match=flag):
        PrecomputeConfig(videos="v", store="s", **kw).validate()


def test_bad_videos_fail_before_a_cluster_starts(tmp_path, monkeypatch):
    import p4d.precompute.job as job

    def no_cluster(*args, **kwargs):
        raise AssertionError("a cluster was started")

    monkeypatch.setattr(job, "connect", no_cluster)
    with pytest.raises(ConfigError, match="VIDEOS"):
        job.run_precompute(PrecomputeConfig(videos=str(tmp_path / "nope"), store=str(tmp_path / "s.zarr"), teacher="tiny"))
