"""``--resume`` (issue #16 items 5 and 6): a resumed run writes only into the folder it resumes,
refuses a cache of another teacher or schema, starts from step 0 when no checkpoint was saved,
and leaves log.jsonl with each step once."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from p4d.errors import CheckpointError
from p4d.train import checkpoint as ckpt
from p4d.train.cli import run_from_flags
from p4d.train.logs import read_log
from p4d.train.trainer import main
from tests.train.conftest import small_config


def _tree(folder: Path) -> dict[str, str]:
    """{relative path: sha256} of every file under ``folder``."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _first_run(train_cache, out: Path, steps: int = 2):
    return main(small_config(train_cache, out, optim={"max_steps": steps}, checkpoint={"every": 1}))


def test_a_copied_run_resumes_into_the_copy_and_leaves_the_original_alone(train_cache, conversations, tmp_path):
    original = tmp_path / "original"
    _first_run(train_cache, original)
    copy = tmp_path / "copy"
    shutil.copytree(original, copy)
    before = _tree(original)

    result = run_from_flags(None, {"resume": str(copy), "optim": {"max_steps": 3}})
    assert result.out == copy
    assert _tree(original) == before                                   # nothing written into the original
    assert [p.name for p in ckpt.list_checkpoints(copy)] == ["step-000001", "step-000002", "step-000003"]
    assert [r["step"] for r in read_log(copy)] == [1, 2, 3]


def test_resume_refuses_another_out_folder(train_cache, conversations, tmp_path):
    _first_run(train_cache, tmp_path / "run")
    with pytest.raises(CheckpointError, match="--out .*continues the run folder"):
        run_from_flags(None, {"resume": str(tmp_path / "run"), "out": str(tmp_path / "elsewhere"),
                              "optim": {"max_steps": 3}})
    assert not (tmp_path / "elsewhere").exists()


def _store_with_teacher_hash(src: Path, dst: Path, weights_hash: str) -> Path:
    shutil.copytree(src, dst)
    meta = json.loads((dst / "zarr.json").read_text())
    meta["attributes"]["spec"]["teacher"]["weights_hash"] = weights_hash
    (dst / "zarr.json").write_text(json.dumps(meta))
    return dst


def test_resume_on_a_cache_of_other_teacher_weights_is_refused_unless_allowed(train_cache, conversations, tmp_path):
    run = tmp_path / "run"
    _first_run(train_cache, run)
    saved_hash = ckpt.read_meta(ckpt.list_checkpoints(run)[-1])["cache"]["teacher_hash"]
    other = _store_with_teacher_hash(Path(train_cache.store), tmp_path / "other.zarr", "sha256:feedbeef")
    assert saved_hash and saved_hash != "sha256:feedbeef"
    flags = {"resume": str(run), "data": {"cache": str(other)}, "optim": {"max_steps": 3}}
    with pytest.raises(CheckpointError, match="teacher_hash 'sha256:feedbeef'.*--allow-teacher-change"):
        run_from_flags(None, flags)
    assert len(ckpt.list_checkpoints(run)) == 2 and [r["step"] for r in read_log(run)] == [1, 2]   # untouched
    result = run_from_flags(None, {**flags, "allow_teacher_change": True})
    assert result.steps == 3
    assert ckpt.read_meta(result.checkpoint)["cache"]["teacher_hash"] == "sha256:feedbeef"


def test_resume_without_a_checkpoint_starts_at_step_zero_and_logs_each_step_once(train_cache, conversations,
                                                                                   tmp_path):
    run = tmp_path / "run"
    _first_run(train_cache, run, steps=2)
    reference = {r["step"]: r["loss"] for r in read_log(run)}
    shutil.rmtree(run / ckpt.CHECKPOINTS)                  # as if killed before the first save
    assert ckpt.find_resume(run) == (run, None)

    result = run_from_flags(None, {"resume": str(run)})
    assert result.steps == 2
    records = read_log(run)
    assert [r["step"] for r in records] == [1, 2]          # the earlier lines were dropped, not duplicated
    assert {r["step"]: r["loss"] for r in records} == pytest.approx(reference, rel=1e-6)   # same seed, same run


def test_resume_of_a_folder_that_is_no_run_is_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="neither a run folder"):
        run_from_flags(None, {"resume": str(tmp_path / "empty")})
