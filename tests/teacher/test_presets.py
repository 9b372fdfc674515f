"""Presets: derived grids from the published numbers (notes/l4p.md §1), validation errors."""

import dataclasses

import pytest

from p4d.errors import ConfigError
from p4d.teacher.presets import PRESETS, TeacherPreset, get_preset


def test_l4p_grids_match_published_token_grid():
    p = get_preset("l4p")
    # 16 frames / tubelet 2, 224 / 14 = 16, width 1408 -> 8 x 16 x 16 x 1408 = 2048 tokens.
    assert p.latent_grid == (8, 16, 16, 1408)
    assert p.num_tokens == 2048
    assert p.ray_grid == (16, 16)
    assert p.taps == (14, 21, 28, 36)
    assert p.head_dim == 88
    assert p.mlp_dim == int(1408 * 48 / 11)


def test_tiny_grids():
    p = get_preset("tiny")
    assert p.latent_grid == (8, 8, 8, 64)
    assert p.ray_grid == (8, 8)
    assert p.taps == (1, 2, 3, 4)


def test_unknown_preset_names_choices():
    with pytest.raises(ConfigError, match=r"'x': unknown preset \(known: l4p, tiny, tiny-random\)"):
        get_preset("x")


@pytest.mark.parametrize(
    "change, field",
    [({"img_size": 100}, "img_size"), ({"num_frames": 15}, "num_frames"), ({"taps": (1, 2, 3, 9)}, "taps"),
     ({"num_heads": 5}, "embed_dim"), ({"taps": (2, 1, 3, 4)}, "taps")],
)
def test_invalid_preset_rejected(change, field):
    with pytest.raises(ConfigError, match=field):
        dataclasses.replace(PRESETS["tiny"], **change)


def test_to_dict_is_plain_and_roundtrips():
    d = PRESETS["l4p"].to_dict()
    assert d["taps"] == [14, 21, 28, 36] and d["mean"] == [0.485, 0.456, 0.406]
    rebuilt = TeacherPreset(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})
    assert rebuilt == PRESETS["l4p"]
    for p in PRESETS.values():
        assert "\n" not in p.describe()
