"""HeadsConfig validation and dict round trip."""

import json

import pytest

from p4d.errors import ConfigError
from p4d.heads import L4P_HEADS, TINY_HEADS, HeadsConfig


def test_defaults_are_the_published_sizes():
    cfg = HeadsConfig()
    assert cfg == L4P_HEADS
    assert (cfg.embed_dim, cfg.latent_grid, cfg.num_frames, cfg.image_size) == (1408, (8, 16, 16), 16, (224, 224))
    assert (cfg.feature_dim, cfg.last_dim, cfg.layer_dims) == (256, 128, (256, 512, 1024, 1024))
    assert cfg.ray_grid == (16, 16)
    assert TINY_HEADS.ray_grid == (8, 8)


@pytest.mark.parametrize("cfg", [L4P_HEADS, TINY_HEADS, HeadsConfig(modalities=("camray",))])
def test_dict_round_trip_through_json(cfg):
    back = HeadsConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert back == cfg
    assert isinstance(back.latent_grid, tuple) and isinstance(back.modalities, tuple)


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"embed_dim": 0}, "embed_dim"),
        ({"embed_dim": 1.5}, "embed_dim"),
        ({"latent_grid": (8, 16)}, "latent_grid"),
        ({"image_size": (224, 225)}, "image_size"),
        ({"num_taps": 3}, "num_taps"),
        ({"layer_dims": (256, 512, 1024)}, "layer_dims"),
        ({"modalities": ("depth", "normals")}, "modalities"),
        ({"modalities": ()}, "modalities"),
        ({"modalities": ("depth", "depth")}, "modalities"),
        ({"feature_dim": 1}, "feature_dim"),
    ],
)
def test_bad_values_name_the_field(kwargs, field):
    with pytest.raises(ConfigError, match=f"HeadsConfig.{field}"):
        HeadsConfig(**kwargs)


def test_from_dict_rejects_unknown_fields():
    with pytest.raises(ConfigError, match="unknown fields.*depth_fn"):
        HeadsConfig.from_dict({**TINY_HEADS.to_dict(), "depth_fn": "exp"})
