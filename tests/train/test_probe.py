"""Probe mode (`p4d train --probe-from RUN`): a 4d-sft student, frozen, gets a D_4DP trained on it; its
weights stay the source's bit for bit and `p4d eval distill` scores the probe run."""

from __future__ import annotations

import pytest
import safetensors.torch
import torch

from p4d.errors import CheckpointError, ConfigError
from tests.train.conftest import small_config

pytestmark = pytest.mark.slow  # a tiny cache, a 2-step source run and 3-step probes: ~30 s of CPU


def _weights(run, step: int) -> dict[str, torch.Tensor]:
    from p4d.train.checkpoint import MODEL, step_dir

    return safetensors.torch.load_file(str(step_dir(run, step) / MODEL))


@pytest.fixture(scope="module")
def sft_run(train_cache, tmp_path_factory):
    from tests.train.conftest import good_records, write_jsonl
    from p4d.train.trainer import main

    conv = write_jsonl(train_cache.root / "probe.jsonl", good_records())
    out = tmp_path_factory.mktemp("probe") / "sft"
    main(small_config(train_cache, out, conv, recipe={"strategy": "4d-sft", "time_cue": "mark"},
                      optim={"max_steps": 2}))
    return out, conv


def test_probe_trains_only_d4dp_on_the_frozen_source_and_eval_distill_scores_it(train_cache, sft_run, tmp_path):
    from p4d.eval.distill import BASELINE, DistillConfig, run_distill
    from p4d.train.checkpoint import read_meta, step_dir
    from p4d.train.trainer import main

    source, conv = sft_run
    out = tmp_path / "probe"
    main(small_config(train_cache, out, conv, probe_from=str(source), optim={"max_steps": 3},
                      checkpoint={"every": 1, "export": True}))
    src = _weights(source, 2)
    assert not any(k.startswith("d4dp.") for k in src)  # 4d-sft builds no D_4DP
    first, last = _weights(out, 1), _weights(out, 3)
    for k, v in src.items():  # every student tensor is the source's, bit for bit, at every step
        assert torch.equal(first[k], v) and torch.equal(last[k], v), k
    d4dp = [k for k in last if k.startswith("d4dp.")]
    assert d4dp and set(last) == set(src) | set(d4dp)
    assert any(not torch.equal(first[k], last[k]) for k in d4dp)  # D_4DP trained
    meta = read_meta(step_dir(out, 3))
    assert meta["config"]["probe_from"] == str(step_dir(source, 2))  # the exact checkpoint it probed
    assert meta["config"]["recipe"]["strategy"] == "p4d" and meta["config"]["recipe"]["time_cue"] == "mark"
    assert {k: v for k, v in meta["trainable"].items() if v} == {
        "d4dp": sum(v.numel() for k, v in last.items() if k.startswith("d4dp."))}
    assert not (out / "export").exists()  # it would be the source's student unchanged

    result = run_distill(DistillConfig(store=train_cache.store, run=str(out), clips="4,5", device="cpu"))
    assert [(r["name"], r["step"]) for r in result.rows] == [(BASELINE, None), ("student", 3)]
    student = result.rows[1]
    assert all(student[f"{m}_r"] == student[f"{m}_r"] for m in ("f4d", "depth", "flow", "motion", "camray"))


def test_probe_flags_are_checked_and_named(train_cache, sft_run, tmp_path):
    from p4d.train.trainer import main

    source, conv = sft_run
    with pytest.raises(ConfigError, match=r"--probe-from .*only --strategy p4d builds; drop --strategy 4d-sft"):
        small_config(train_cache, tmp_path / "a", conv, probe_from=str(source), recipe={"strategy": "4d-sft"})
    with pytest.raises(ConfigError, match=r"--probe-from .*every term of --loss ld-only has weight 0"):
        small_config(train_cache, tmp_path / "b", conv, probe_from=str(source), recipe={"loss": "ld-only"},
                     loss={"ld_weight": 0})
    from p4d.train.checkpoint import step_dir
    from p4d.train.probe import resolve_probe

    bare = small_config(train_cache, tmp_path / "e", conv, probe_from=str(source), model={"preset": None})
    assert bare.model.preset is None  # no --student needed: the probe takes the source's
    assert resolve_probe(bare) == step_dir(source, 2) and bare.model.preset == "tiny"
    assert bare.recipe.time_cue == "mark"  # the source's, not the default tpe
    with pytest.raises(CheckpointError, match=r"--probe-from .*nowhere: no student checkpoint there"):
        main(small_config(train_cache, tmp_path / "c", conv, probe_from=str(tmp_path / "nowhere")))
    with pytest.raises(ConfigError, match=r"--student nvila-lite-2b: --probe-from .* trained --student tiny"):
        main(small_config(train_cache, tmp_path / "d", conv, probe_from=str(source),
                          model={"preset": "nvila-lite-2b"}))
