"""TrainConfig: defaults < YAML < flags, validation messages name the flag, recipe tables."""

import pytest
import yaml

from p4d.errors import ConfigError
from p4d.train.config import LOSS_PRESETS, TrainConfig, parse_overrides, resolve_config

REQUIRED = {"data": {"conversations": "c.jsonl", "cache": "s.zarr"}, "out": "run", "model": {"preset": "tiny"}}


def test_yaml_then_flags_precedence(tmp_path):
    file = tmp_path / "recipe.yaml"
    file.write_text(yaml.safe_dump({**REQUIRED, "optim": {"lr_llm": 1e-5, "max_steps": 7}, "recipe": {"loss": "ld+d"}}))
    flags = parse_overrides(["--optim.lr-llm", "3e-4", "--augment.hflip=0", "--data.allow-missing-targets",
                             "--loss", "ed-only", "--steps", "9"])
    cfg = resolve_config(config_file=file, overrides=flags)
    assert cfg.optim.lr_llm == 3e-4          # flag beats YAML
    assert cfg.optim.max_steps == 9          # short flag --steps
    assert cfg.recipe.loss == "ed-only"      # --loss is the recipe preset
    assert cfg.data.allow_missing_targets is True
    assert cfg.optim.lr_projector == TrainConfig().optim.lr_projector  # untouched default


def test_saved_config_round_trips(tmp_path):
    cfg = resolve_config(overrides={**REQUIRED, "optim": {"betas": "0.8,0.95"}, "expect": {"teacher_hash": "sha256:x"}})
    path = cfg.save(tmp_path / "config.yaml")
    again = resolve_config(config_file=path)
    assert again.to_dict() == cfg.to_dict()
    assert again.optim.betas == (0.8, 0.95)


@pytest.mark.parametrize(
    ("overrides", "flag"),
    [
        ({"optim": {"lr_llm": "fast"}}, "--optim.lr-llm"),
        ({"optim": {"max_steps": 0}}, "--optim.max-steps"),
        ({"optim": {"nesterov": True}}, "--optim.nesterov"),
        ({"recipe": {"strategy": "p5d"}}, "--recipe.strategy"),
        ({"recipe": {"tune": "tune-everything"}}, "--recipe.tune"),
        ({"recipe": {"strategy": "zero-shot"}}, "--strategy zero-shot"),
        ({"augment": {"temporal_subsample": 2}}, "unknown setting --augment.temporal-subsample"),   # removed: it did nothing
        ({"checkpoint": {"export_dtype": "fp16"}}, "--export-dtype 'fp16'"),
        ({"runtime": {"dist_timeout": 0}}, "--runtime.dist-timeout"),
        ({"augment": {"hflip": 0.5}}, "--augment.hflip"),                               # LD on by default
        ({"augment": {"hflip": 0.5}, "recipe": {"strategy": "4d-concat"}}, "--augment.hflip"),
        ({"data": {"batch_size": 0}}, "--data.batch-size"),
        ({"data": {"conversations": ""}}, "--data"),
        ({"loss": {"ld_weight": -1.0}}, "--loss.ld-weight"),
    ],
)
def test_errors_name_the_flag(overrides, flag):
    tree = {**REQUIRED, **overrides}
    if "data" in overrides:
        tree["data"] = {**REQUIRED["data"], **overrides["data"]}
    with pytest.raises(ConfigError, match=flag.replace(".", r"\.").replace("+", r"\+")):
        resolve_config(overrides=tree)


def test_export_dtype_flag_and_default():
    assert resolve_config(overrides=REQUIRED).checkpoint.export_dtype == "bf16"
    flags = parse_overrides(["--export-dtype", "fp32"])
    assert resolve_config(overrides={**REQUIRED, **flags}).checkpoint.export_dtype == "fp32"


def test_a_saved_config_with_the_retired_temporal_subsample_still_loads():
    """Runs saved before --augment.temporal-subsample was removed recorded its only value, 1; their
    meta.json / config.yaml still resume. Any other value stays an unknown setting."""
    from p4d.train.config import config_from_json, drop_retired

    saved = TrainConfig().to_dict()
    saved["augment"]["temporal_subsample"] = 1
    assert config_from_json(__import__("json").dumps(saved)).augment.hflip == 0.0
    assert "temporal_subsample" not in drop_retired(saved)["augment"]
    assert TrainConfig.from_dict(saved, source="checkpoints/step-000001/meta.json").augment.hflip == 0.0
    with pytest.raises(ConfigError, match="unknown setting --augment.temporal-subsample"):
        TrainConfig.from_dict(saved, source="flags")            # a flag: refused, it does nothing
    saved["augment"]["temporal_subsample"] = 2
    with pytest.raises(ConfigError, match="unknown setting --augment.temporal-subsample"):
        config_from_json(__import__("json").dumps(saved))


def test_hflip_allowed_when_the_cache_can_follow():
    cfg = resolve_config(overrides={**REQUIRED, "augment": {"hflip": 0.5}, "recipe": {"loss": "ed-only"}})
    assert cfg.augment.hflip == 0.5
    cfg = resolve_config(overrides={**REQUIRED, "augment": {"hflip": 0.5}, "loss": {"ld_weight": 0.0}})
    assert cfg.augment.hflip == 0.5


#: Tab. 5 presets -> the terms whose weight stays non-zero (written out by hand).
EXPECTED_TERMS = {
    "ld-only": {"ld"},
    "ld+d": {"ld", "depth"},
    "ld+d+f": {"ld", "depth", "flow"},
    "ld+d+f+m": {"ld", "depth", "flow", "motion"},
    "ed-only": {"depth", "flow", "motion", "camray"},
    "ld+ed": {"ld", "depth", "flow", "motion", "camray"},
}


@pytest.mark.parametrize("preset", sorted(LOSS_PRESETS))
def test_loss_preset_weights(preset):
    defaults = {"ld_weight": 0.01, "depth_weight": 0.1, "flow_weight": 0.001, "motion_weight": 0.01, "camray_weight": 0.1}
    cfg = resolve_config(overrides={**REQUIRED, "recipe": {"loss": preset}, "loss": {"depth_weight": 0.5}})
    weights = cfg.loss_weights(defaults)
    on = {k.removesuffix("_weight") for k, v in weights.items() if v > 0}
    assert on == EXPECTED_TERMS[preset]
    if "depth" in on:
        assert weights["depth_weight"] == 0.5  # the override survives the preset
    # 4d-sft trains SFT only, whatever the loss preset
    sft = resolve_config(overrides={**REQUIRED, "recipe": {"loss": preset, "strategy": "4d-sft"}})
    assert all(v == 0 for v in sft.loss_weights(defaults).values())


def test_bad_yaml_names_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("optim: [unclosed")
    with pytest.raises(ConfigError, match="bad.yaml"):
        resolve_config(config_file=bad)
    with pytest.raises(ConfigError, match="no such file"):
        resolve_config(config_file=tmp_path / "absent.yaml")


def test_student_is_required_and_yaml_or_weights_name_it(tmp_path):
    bare = {k: v for k, v in REQUIRED.items() if k != "model"}
    with pytest.raises(ConfigError, match=r"^--student: no student given.*--model.init-from.*--student tiny"):
        resolve_config(overrides=bare)
    file = tmp_path / "recipe.yaml"
    file.write_text(yaml.safe_dump({**bare, "model": {"preset": "nvila-lite-2b"}}))
    assert resolve_config(config_file=file).model.preset == "nvila-lite-2b"      # YAML model.preset still works
    weights = resolve_config(overrides={**bare, "model": {"init_from": "NVILA-Lite-8B"}})  # weights name the student
    assert weights.model.preset is None


@pytest.mark.parametrize("preset", ["nvila-lite-8b", "nvila-lite-2b"])
def test_nvila_presets_train_with_sdpa_and_gradient_checkpointing(preset):
    from p4d.train.build import student_config
    from p4d.train.model import resolve_attn

    cfg = resolve_config(overrides={**REQUIRED, "model": {"preset": preset}})
    student = student_config(cfg)
    assert student.attn == "auto" and resolve_attn(student.attn, "cpu") == "sdpa" and student.gradient_checkpointing
    asked = resolve_config(overrides={**REQUIRED, "model": {"preset": preset, "attn": "eager",
                                                            "gradient_checkpointing": "false"}})
    assert (student_config(asked).attn, student_config(asked).gradient_checkpointing) == ("eager", False)
    tiny = student_config(resolve_config(overrides=REQUIRED))                      # the tiny preset is unchanged
    assert (tiny.attn, tiny.gradient_checkpointing) == ("eager", False)
    with pytest.raises(ConfigError, match="--model.attn 'flash'"):
        resolve_config(overrides={**REQUIRED, "model": {"preset": preset, "attn": "flash"}})
