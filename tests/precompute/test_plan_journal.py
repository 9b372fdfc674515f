"""Planning probes videos as tasks on a real LocalCluster, journals them, and a killed plan resumes."""

import json
import uuid
from pathlib import Path

import numpy as np
import pytest

from p4d.cache_schema import open_store
from p4d.precompute import plan_journal
from p4d.precompute.plan import build_spec, plan_store, plan_video
from p4d.video import write_synthetic_video

GOOD = 6


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> Path:
    """6 good videos (2 clips each, stride policy) of different lengths and one that is not a video."""
    root = tmp_path_factory.mktemp("plan-videos")
    for i in range(GOOD):
        write_synthetic_video(root / f"v{i}.mp4", num_frames=34 + 16 * (i % 2), fps=12, size=(64, 48), seed=i)
    (root / "not_a_video.mp4").write_text("text\n")
    return root


@pytest.fixture(scope="module")
def client():
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None) \
            as cluster, Client(cluster) as c:
        yield c


def _spec():
    return build_spec(teacher="tiny", num_frames=16, policy="stride", frame_stride=1,
                      modalities=("depth",), codec=None, clips_per_shard=4)


def _counting_probe(marker_dir: Path):
    """plan_video that leaves one marker file per probe (it runs in the worker processes)."""
    def probe(path, **kw):
        (marker_dir / f"{Path(path).name}.{uuid.uuid4().hex}").touch()
        return plan_video(path, **kw)
    return probe


def _probed(marker_dir: Path) -> list[str]:
    return sorted(p.name.rsplit(".", 1)[0] for p in marker_dir.iterdir())


def _plan_of(url: str) -> tuple:
    store = open_store(url)
    return ([v.to_dict() for v in store.videos], store.spec.to_dict(), store.num_clips,
            np.asarray(store.array("clips/video")[:]).tolist())


def test_a_killed_plan_resumes_with_the_videos_not_yet_probed(videos, client, tmp_path, monkeypatch):
    once = str(tmp_path / "once.zarr")
    plan_store(videos, once, _spec())  # serial, in this process: the reference
    marks = tmp_path / "marks"
    marks.mkdir()
    url = str(tmp_path / "c.zarr")
    journal = plan_journal.journal_path(url)
    assert journal == tmp_path / "c.zarr.plan.jsonl"

    real_append, calls = plan_journal.PlanJournal.append, []

    def append_then_die(self, probed):  # the driver is stopped after 3 batches are journaled
        probed = list(probed)
        if len(calls) == 3:
            raise KeyboardInterrupt
        calls.append([p for p, _, _ in probed])
        real_append(self, probed)

    monkeypatch.setattr(plan_journal.PlanJournal, "append", append_then_die)
    with pytest.raises(KeyboardInterrupt):
        plan_store(videos, url, _spec(), client=client, batch=1, probe_fn=_counting_probe(marks))
    monkeypatch.setattr(plan_journal.PlanJournal, "append", real_append)
    assert not Path(url).exists()
    lines = journal.read_text().splitlines()
    assert json.loads(lines[0])["sampling"] == {"num_frames": 16, "policy": "stride", "frame_stride": 1}
    journaled = sorted(json.loads(line)["path"] for line in lines[1:])
    assert len(journaled) == 3 and journaled == sorted(p for c in calls for p in c)
    with open(journal, "a") as f:  # a kill -9 in the middle of writing the next line
        f.write('{"path": "' + str(videos / "v5.mp4") + '", "key": [1')

    rerun = tmp_path / "marks-rerun"  # not `marks`: a cancelled probe of the first run may still finish there
    rerun.mkdir()
    plan_store(videos, url, _spec(), client=client, batch=1, probe_fn=_counting_probe(rerun))
    all_paths = sorted(str(p) for p in videos.glob("*.mp4"))
    assert _probed(rerun) == sorted(Path(p).name for p in all_paths if p not in journaled)
    assert _plan_of(url) == _plan_of(once)
    assert not journal.exists()  # the store holds the plan now


def test_a_changed_video_or_other_sampling_is_probed_again(videos, tmp_path):
    spec, url = _spec(), str(tmp_path / "c.zarr")
    journal = plan_journal.PlanJournal(plan_journal.journal_path(url),
                                       {"sampling": dict(spec.sampling), "max_pixels": None})
    paths = sorted(str(p) for p in videos.glob("*.mp4"))
    from p4d.precompute.plan import probe_batch

    journal.append(probe_batch(paths, spec.sampling, None))
    assert sorted(journal.reusable(paths)) == paths
    # a file rewritten since its probe (its mtime moves) is probed again; the others are reused
    changed = tmp_path / "changed.mp4"
    changed.write_bytes(Path(paths[0]).read_bytes())
    journal.append(probe_batch([str(changed)], spec.sampling, None))
    changed.write_bytes(Path(paths[1]).read_bytes())
    assert str(changed) not in journal.reusable([*paths, str(changed)])
    # another sampling policy: nothing is reused, the old journal is dropped
    other = plan_journal.PlanJournal(journal.path, {"sampling": {**spec.sampling, "frame_stride": 2},
                                                    "max_pixels": None})
    assert other.reusable(paths) == {} and not journal.path.exists()


def test_a_probe_task_that_keeps_failing_plans_its_video_unusable(videos, client, tmp_path):
    bad = str(videos / "v2.mp4")

    def crash_on_v2(path, **kw):
        if path == bad:
            raise MemoryError("decoder blew up")
        return plan_video(path, **kw)

    url = str(tmp_path / "c.zarr")
    store = plan_store(videos, url, _spec(), client=client, batch=3, probe_fn=crash_on_v2, retries=0)
    by_path = {v.path: v for v in store.videos}
    assert by_path[bad].num_frames == 0 and "probing it failed (MemoryError: decoder blew up)" in by_path[bad].note
    assert all(v.num_clips >= 2 for p, v in by_path.items() if p != bad and "not_a_video" not in p)


@pytest.mark.slow
def test_precompute_stopped_while_planning_resumes_its_plan(videos, tmp_path, monkeypatch):
    """The job's own cluster probes; Ctrl-C while planning keeps the journal; the rerun probes the rest."""
    from p4d.precompute.config import PrecomputeConfig
    from p4d.precompute.job import run_precompute

    cfg = PrecomputeConfig(videos=str(videos), store=str(tmp_path / "c.zarr"), teacher="tiny", policy="stride",
                           clips_per_shard=4, workers=1, device="cpu", progress=False)
    real_append, appended = plan_journal.PlanJournal.append, []

    def append(self, probed, stop_after=None):
        probed = list(probed)
        if stop_after is not None and len(appended) >= stop_after:
            raise KeyboardInterrupt
        appended.extend(p for p, _, _ in probed)
        real_append(self, probed)

    def no_shards(url, shard, job):
        return {"done": 0, "failed": 0}

    monkeypatch.setattr(plan_journal.PlanJournal, "append", lambda self, probed: append(self, probed, stop_after=2))
    report = run_precompute(cfg, shard_fn=no_shards)
    assert report.interrupted and report.phase == "planning the store"
    first = list(appended)
    assert 2 <= len(first) < GOOD + 1 and not Path(cfg.store).exists()
    appended.clear()
    monkeypatch.setattr(plan_journal.PlanJournal, "append", lambda self, probed: append(self, probed))
    report = run_precompute(cfg, shard_fn=no_shards)
    assert not report.interrupted
    assert sorted(first + appended) == sorted(str(p) for p in videos.glob("*.mp4"))  # each probed exactly once
    assert len(open_store(cfg.store).videos) == GOOD + 1
    assert not plan_journal.journal_path(cfg.store).exists()
