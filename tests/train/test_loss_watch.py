"""The control's bookkeeping: weight-0 terms logged only on --log.every steps, the warning for a
term < 1e-4 of the total for 100 steps, and the targets read for a weight-0 LD."""

import logging

import pytest

from p4d.train import loss_watch
from p4d.train.loss_watch import NegligibleTerms
from p4d.train.logs import read_log
from p4d.train.trainer import needed_targets
from tests.train.conftest import small_config


def test_negligible_term_warns_once_after_patience_consecutive_steps(caplog):
    watch = NegligibleTerms({"sft": 1.0, "camray": 1e-5, "ld": 0.0}, patience=3)
    small = {"loss": 2.0, "sft": 2.0, "camray": 1.0}        # 1e-5 x 1 / 2 = 5e-6 < 1e-4
    big = {"loss": 2.0, "sft": 2.0, "camray": 100.0}         # 1e-5 x 100 / 2 = 5e-4: not small
    with caplog.at_level(logging.WARNING, logger="p4d.train.loss_watch"):
        assert watch.update(small, 1) == [] and watch.update(small, 2) == []
        assert watch.update(big, 3) == []                    # the streak restarts
        assert [watch.update(small, s) for s in (4, 5, 6, 7)] == [[], [], ["camray"], []]  # once
    assert len(caplog.records) == 1
    msg = caplog.records[0].getMessage()
    assert "'camray'" in msg and "--loss.camray-weight" in msg and "for 3 steps" in msg and "step 6" in msg
    assert "ld" not in watch.weights                         # weight 0: not in the total, not watched


def test_weight_zero_ld_reads_f4d_unless_frames_may_flip(train_cache, tmp_path):
    on = small_config(train_cache, tmp_path / "a", loss={"ld_weight": 0.0})
    assert "f4d" in needed_targets(on)
    flip = small_config(train_cache, tmp_path / "b", loss={"ld_weight": 0.0}, augment={"hflip": 0.5})
    assert "f4d" not in needed_targets(flip)


@pytest.mark.slow
def test_trainer_logs_weight_zero_terms_on_log_steps_and_warns(train_cache, conversations, tmp_path, monkeypatch, caplog):
    import p4d.train.trainer as trainer

    seen = []
    real = trainer.train_step
    monkeypatch.setattr(trainer, "train_step", lambda *a, **k: seen.append(k["log_untrained"]) or real(*a, **k))
    monkeypatch.setattr(loss_watch, "PATIENCE", 2)
    cfg = small_config(train_cache, tmp_path / "run", optim={"max_steps": 5}, log={"every": 2},
                       loss={"ld_weight": 0.0, "flow_weight": 0.0, "camray_weight": 1e-12})
    with caplog.at_level(logging.WARNING, logger="p4d.train.loss_watch"):
        trainer.main(cfg)
    assert seen == [False, True, False, True, True]          # steps 2, 4 and the last
    records = read_log(tmp_path / "run")
    assert [r["step"] for r in records] == [2, 4, 5]
    assert all("ld" in r and "flow" in r for r in records)   # weight 0: logged
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == 1 and "'camray'" in warned[0]
