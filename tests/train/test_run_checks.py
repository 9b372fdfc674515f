"""Pre-flight checks of ``p4d train`` (issue 22, item 8): the cache's student size against the
student's, and optimizer settings on resume."""

from __future__ import annotations

import json
import shutil

import pytest

from p4d.errors import CacheSchemaError, CheckpointError
from p4d.train.trainer import check_resumable, main
from tests.train.conftest import TINY_STUDENT_SIZE, small_config


def test_a_cache_made_for_another_student_size_is_refused_before_training(train_cache, conversations, tmp_path):
    """The tiny student squashes frames to 56×56; a store whose release teacher input was made from
    448×448 frames is refused with one line naming the store and the precompute flag, before the
    run folder exists."""
    other = tmp_path / "s448.zarr"
    shutil.copytree(train_cache.store, other)
    meta = json.loads((other / "zarr.json").read_text())
    assert meta["attributes"]["spec"]["spatial"]["student_size"] == TINY_STUDENT_SIZE
    meta["attributes"]["spec"]["spatial"]["student_size"] = 448
    (other / "zarr.json").write_text(json.dumps(meta))
    cfg = small_config(train_cache, tmp_path / "run", data={"cache": str(other)}, optim={"max_steps": 1})
    with pytest.raises(CacheSchemaError) as err:
        main(cfg)
    message = str(err.value)
    assert "\n" not in message and str(other) in message
    assert "--student-size 448" in message and "image size is 56" in message
    assert not (tmp_path / "run").exists()


def _meta(cfg) -> dict:
    return {"config": cfg.to_dict(), "world_size": 1}


@pytest.mark.parametrize(("optim", "flag"), [
    ({"lr_llm": 1e-4}, "--optim.lr-llm"), ({"weight_decay": 0.1}, "--optim.weight-decay"),
    ({"betas": (0.9, 0.95)}, "--optim.betas"), ({"grad_accum": 2}, "--optim.grad-accum"),
])
def test_resume_refuses_another_optimizer_setting(train_cache, tmp_path, optim, flag):
    saved = small_config(train_cache, tmp_path / "run")
    changed = small_config(train_cache, tmp_path / "run", optim=optim)
    with pytest.raises(CheckpointError, match=flag.replace(".", r"\.")):
        check_resumable(changed, _meta(saved))


def test_resume_may_change_the_run_length(train_cache, tmp_path):
    saved = small_config(train_cache, tmp_path / "run")
    check_resumable(small_config(train_cache, tmp_path / "run"), _meta(saved))
    check_resumable(small_config(train_cache, tmp_path / "run", optim={"max_steps": 40, "warmup_steps": 3,
                                                                       "min_lr_ratio": 0.1}), _meta(saved))
