"""Conversation records joined with the cache: kinds, skips and their counts, content matching."""

import shutil

import pytest
from PIL import Image

from p4d.cache_schema import open_store
from p4d.errors import ConfigError
from p4d.precompute.plan import file_fingerprint as planner_fingerprint
from p4d.train.data import build_samples, file_fingerprint, parse_turns
from tests.train.conftest import good_records, record, write_jsonl


def test_join_counts_every_kind_of_bad_record(train_cache, tmp_path):
    root = train_cache.root
    extra = tmp_path / "extra.mp4"  # a real video that the cache never saw
    shutil.copy(train_cache.videos / "v0.mp4", extra)
    extra.write_bytes(extra.read_bytes() + b"\0")  # other content: no fingerprint match either
    Image.new("RGB", (40, 30), (200, 10, 10)).save(root / "img.png")
    records = [
        *good_records()[:2],
        record("videos/bad.mp4", rid="failed"),                    # clip failed in precompute
        record("videos/gone.mp4", rid="missing"),                  # no such file
        '{"id": "torn", "video": ',                                 # malformed JSON line
        record(str(extra), rid="uncached"),                        # exists, not in the cache
        record("videos/v2.mp4", rid="far", clip=3),                # the cache planned 1 clip
        {"id": "oneside", "video": "videos/v3.mp4", "conversations": [{"from": "human", "value": "Q?"}]},
        {"id": "img", "image": "img.png", "conversations": [{"from": "human", "value": "<image>\nColour?"},
                                                             {"from": "gpt", "value": "red"}]},
        {"id": "nothing", "conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello"}]},
    ]
    data = write_jsonl(root / "mixed.jsonl", records)
    store = open_store(train_cache.store)
    samples, report = build_samples(data, store)

    assert report.records == 10
    assert dict(report.skipped) == {"failed_clip": 1, "missing_video": 1, "malformed": 2, "not_in_cache": 1,
                                    "clip_out_of_range": 1, "no_media": 1}
    assert dict(report.kinds) == {"video": 2, "image": 1}
    assert "mixed.jsonl:5" in report.examples["malformed"][0]          # the line number of the torn record
    assert "bad.mp4" in report.examples["failed_clip"][0] and "cannot be opened" in report.examples["failed_clip"][0]
    # clip k of video row r: the cache orders videos by path (bad, v0, v1 ...): v0 is clip 1, v1 clip 2
    by_id = {s.record_id: s for s in samples}
    assert (by_id["v0"].clip, by_id["v1"].clip) == (1, 2)
    assert (by_id["v0"].shard, by_id["v1"].shard) == (0, 1)
    assert by_id["img"].kind == "image" and by_id["img"].num_frames == 1 and by_id["img"].shard == -1

    # --allow-missing-targets: failed / uncached / out-of-range clips train SFT-only; missing files never do
    samples, report = build_samples(data, store, allow_missing_targets=True)
    assert sorted(s.record_id for s in samples if s.kind == "video-sft") == ["failed", "far", "uncached"]
    assert dict(report.skipped) == {"missing_video": 1, "malformed": 2, "no_media": 1}
    assert report.degraded["sft_only_missing_targets"] == 3


def test_moved_video_joins_by_content(train_cache, tmp_path):
    moved = tmp_path / "elsewhere" / "renamed.mp4"
    moved.parent.mkdir()
    shutil.copy(train_cache.videos / "v3.mp4", moved)
    data = write_jsonl(tmp_path / "moved.jsonl", [record("elsewhere/renamed.mp4", rid="moved")])
    samples, report = build_samples(data, open_store(train_cache.store))
    assert [(s.record_id, s.kind, s.clip) for s in samples] == [("moved", "video", 4)]
    # the fingerprint is the planner's (independent implementation in p4d.precompute)
    assert file_fingerprint(moved) == planner_fingerprint(str(moved))


def test_video_root_and_placeholders(train_cache, tmp_path):
    data = write_jsonl(tmp_path / "rooted.jsonl", [record("v1.mp4", question="<video>\n<video> How fast?")])
    samples, _ = build_samples(data, open_store(train_cache.store), video_root=train_cache.videos)
    assert samples[0].turns == (("How fast?", "A"),)


def test_whole_json_file_errors_name_it(tmp_path, train_cache):
    bad = tmp_path / "broken.json"
    bad.write_text("[{")
    with pytest.raises(ConfigError, match="broken.json"):
        build_samples(bad, open_store(train_cache.store))
    with pytest.raises(ConfigError, match="no such file"):
        build_samples(tmp_path / "absent.jsonl", open_store(train_cache.store))


@pytest.mark.parametrize(
    ("conversations", "message"),
    [
        ([], "non-empty 'conversations'"),
        ([{"from": "gpt", "value": "A"}, {"from": "human", "value": "Q"}], "human turn then a gpt turn"),
        ([{"from": "human", "value": "Q"}, {"from": "gpt", "value": 3}], "string 'value'"),
        ([{"from": "human", "value": "Q"}, {"from": "gpt", "value": "  "}], "empty answer"),
    ],
)
def test_parse_turns_refusals(conversations, message):
    with pytest.raises(ConfigError, match=message):
        parse_turns({"conversations": conversations})


def test_parse_turns_multi_turn_roles():
    turns = parse_turns({"conversations": [
        {"from": "user", "value": "<video>\nQ1"}, {"from": "assistant", "value": "A1"},
        {"from": "human", "value": "Q2"}, {"from": "gpt", "value": "A2"}]})
    assert turns == (("Q1", "A1"), ("Q2", "A2"))
