"""`p4d precompute --min-cosine`: the codec self-check's thresholds travel to the workers and are recorded."""

import json

import pytest

from p4d.cache_schema import format_summary, open_store, read_clips
from p4d.cache_schema.fidelity import token_fidelity
from p4d.precompute.config import PrecomputeConfig
from p4d.precompute.job import run_precompute
from p4d.video import write_synthetic_video

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def two_stores(tmp_path_factory):
    """The same video (2 clips, stride policy) with the default thresholds and with strict ones."""
    root = tmp_path_factory.mktemp("mincos")
    write_synthetic_video(root / "videos" / "a.mp4", num_frames=34, fps=12, size=(96, 64), seed=7)
    stores = {}
    for name, min_cosine in (("default", None), ("strict", "0.99999999,0.9999999")):
        cfg = PrecomputeConfig(videos=str(root / "videos"), store=str(root / f"{name}.zarr"), teacher="tiny-random",
                               policy="stride", clips_per_shard=2, batch_size=2, workers=1, device="cpu",
                               progress=False, min_cosine=min_cosine)
        report = run_precompute(cfg)
        assert report.clips_done == 2, report.headline()
        stores[name] = open_store(cfg.store)
    return stores


def test_strict_thresholds_fall_back_on_clips_the_default_accepts(two_stores):
    default, strict = two_stores["default"], two_stores["strict"]
    assert read_clips(default, [0, 1], decode=False)["f4d_level"].tolist() == [0, 0]
    levels = read_clips(strict, [0, 1], decode=False)["f4d_level"].tolist()
    assert min(levels) >= 1, levels
    # the strict store holds the same teacher output, closer: compare both to each other and to the bfloat16 bound
    a, b = read_clips(default, [0, 1])["f4d"], read_clips(strict, [0, 1])["f4d"]
    for i in range(2):
        st = token_fidelity(b[i], a[i])
        assert st["mean_cosine"] > 0.999 and st["mean_cosine"] < 0.99999999
    # what each store recorded: the thresholds it was checked with, per shard and in the run records
    for store, want in ((default, [0.999, 0.995]), (strict, [0.99999999, 0.9999999])):
        record = json.loads(store.read_side_file("fidelity/shard-0.json"))
        assert [record["policy"]["min_mean_cosine"], record["policy"]["min_worst_cosine"]] == want
        assert store.shard_runs()[0]["min_cosine"] == want
    for clip, st in json.loads(strict.read_side_file("fidelity/shard-0.json"))["clips"].items():
        assert st["level"] == 2 or (st["mean_cosine"] >= 0.99999999 and st["worst_cosine"] >= 0.9999999), st
    assert "thresholds (--min-cosine): mean >= 0.99999999, worst >= 0.9999999 (1 shards)" in format_summary(strict)


def test_a_bad_min_cosine_is_refused_before_a_cluster_starts(tmp_path, monkeypatch):
    import p4d.precompute.job as job
    from p4d.errors import ConfigError

    def no_cluster(*args, **kwargs):
        raise AssertionError("a cluster was started")

    monkeypatch.setattr(job, "connect", no_cluster)
    write_synthetic_video(tmp_path / "v" / "a.mp4", num_frames=20, fps=12, size=(96, 64), seed=0)
    for bad in ("0.9,x", "2", "0.9,0.8,0.7"):
        with pytest.raises(ConfigError, match="--min-cosine"):
            job.run_precompute(PrecomputeConfig(videos=str(tmp_path / "v"), store=str(tmp_path / "s.zarr"),
                                                teacher="tiny", min_cosine=bad))
    assert not (tmp_path / "s.zarr").exists()
