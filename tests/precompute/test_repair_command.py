"""Issue 27: `cache repair` prints the exact `p4d precompute` command rebuilt from the store's attrs,
and that command passes precompute's own check against the store (CacheSpec.compatible_with)."""

import shlex
from pathlib import Path

from typer.testing import CliRunner

from p4d.cache_schema import VideoEntry, create_store, open_store, write_shard
from p4d.cache_schema.repair import WEIGHTS_PLACEHOLDER, precompute_command
from p4d.cli import app
from p4d.precompute.plan import build_spec, resolve_teacher
from tests.cache_schema.helpers import shard_arrays


def make_store(tmp_path, **settings):
    folder = tmp_path / "my videos"
    folder.mkdir()
    videos = [VideoEntry(path=str(folder / f"v{i}.mp4"), size_bytes=10, content_hash=f"h{i}", fps=24.0,
                         duration=2.0, num_frames=48, width=64, height=48, rotation=0, num_clips=2) for i in range(2)]
    return create_store(str(tmp_path / "cache.zarr"), build_spec(**settings), videos), folder


def parsed_run(command: str, monkeypatch, weights_file=None):
    """Run the printed command through the real CLI, with run_precompute replaced by a recorder."""
    import p4d.precompute.job as job

    seen = {}

    def record(cfg):
        seen["cfg"] = cfg.validate()
        raise SystemExit(0)

    monkeypatch.setattr(job, "run_precompute", record)
    argv = shlex.split(command, comments=True)
    assert argv[:2] == ["p4d", "precompute"]
    if weights_file is not None:
        argv[argv.index(WEIGHTS_PLACEHOLDER)] = str(weights_file)
    result = CliRunner().invoke(app, argv[1:])
    assert "cfg" in seen, result.output + repr(result.exception)
    return seen["cfg"]


def assert_fills(store, cfg):
    """What _open_or_plan checks before precompute fills an existing store."""
    spec = build_spec(teacher=resolve_teacher(cfg.teacher, cfg.taps), num_frames=cfg.num_frames, policy=cfg.policy,
                      frame_stride=cfg.frame_stride, modalities=cfg.modalities, codec=cfg.codec,
                      clips_per_shard=cfg.clips_per_shard, weights_hash=store.spec.teacher["weights_hash"],
                      random_weights=cfg.weights is None, teacher_input=cfg.teacher_input,
                      student_size=cfg.student_size)
    assert store.spec.compatible_with(spec) == []


def test_command_of_a_random_l4p_store_with_every_setting_changed(tmp_path, monkeypatch):
    store, folder = make_store(
        tmp_path, teacher=resolve_teacher("l4p", (5, 10, 20, 30)), num_frames=16, policy="stride", frame_stride=3,
        modalities=("depth", "camray"), codec="int8-channel", clips_per_shard=2, weights_hash="abc123",
        teacher_input="direct", random_weights=True)
    command = precompute_command(store)
    assert command == (f"p4d precompute '{folder}' {store.url} --teacher l4p --random-weights --taps 5,10,20,30 "
                       "--num-frames 16 --policy stride --frame-stride 3 --modalities depth,camray "
                       "--codec int8-channel --clips-per-shard 2 --teacher-input direct")
    cfg = parsed_run(command, monkeypatch)
    assert (cfg.policy, cfg.frame_stride, cfg.clips_per_shard, cfg.taps) == ("stride", 3, 2, (5, 10, 20, 30))
    assert_fills(store, cfg)
    # the defaults would be refused by precompute: the command is what keeps a resumed run going
    wrong = build_spec(teacher="l4p", num_frames=16, policy="uniform", frame_stride=1,
                       modalities=("depth", "camray"), codec="int8-channel", clips_per_shard=16,
                       weights_hash="abc123", random_weights=True)
    assert store.spec.compatible_with(wrong)


def test_repair_prints_the_command_of_a_real_weights_store(tmp_path, monkeypatch):
    store, folder = make_store(tmp_path, teacher="tiny", num_frames=16, policy="stride", frame_stride=2,
                               modalities=("depth", "flow", "motion", "camray"), codec=None, clips_per_shard=2,
                               weights_hash="deadbeef", student_size=224)
    for shard in range(store.num_shards):
        write_shard(store, shard, shard_arrays(store, shard))
    Path(store.shard_file("latents/f4d", 1)).unlink()   # shard 1's latents lost

    result = CliRunner().invoke(app, ["cache", "repair", store.url])
    assert result.exit_code == 0, result.output
    command = result.output.splitlines()[-1].strip()
    assert "turned 1 damaged shards (2 clips) pending; recompute them with:" in result.output
    assert command.startswith(f"p4d precompute '{folder}' {store.url} --teacher tiny --teacher-weights TEACHER_WEIGHTS")
    assert "--clips-per-shard 2" in command and "--student-size 224" in command
    assert command.endswith("# TEACHER_WEIGHTS: the checkpoint of weights hash deadbeef")
    weights = tmp_path / "tiny.safetensors"
    weights.write_bytes(b"x")
    assert_fills(open_store(store.url), parsed_run(command, monkeypatch, weights))
