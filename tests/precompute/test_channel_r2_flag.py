"""`p4d precompute --min-channel-r2`: the channel-balanced thresholds reach the self-check's policy."""

import pytest
from typer.testing import CliRunner

from p4d.cli import app
from p4d.errors import ConfigError
from p4d.precompute.config import PrecomputeConfig


def test_min_channel_r2_sets_the_policy_and_bad_values_name_the_flag():
    cfg = PrecomputeConfig(videos="v", store="s.zarr", min_cosine="0.998", min_channel_r2="0.995,0.9")
    p = cfg.fidelity_policy()
    assert (p.min_mean_cosine, p.min_worst_cosine, p.min_channel_r2_mean, p.min_channel_r2_worst) == (0.998, 0.995, 0.995, 0.9)
    d = PrecomputeConfig(videos="v", store="s.zarr").fidelity_policy()
    assert (d.min_channel_r2_mean, d.min_channel_r2_worst) == (0.99, 0.95)
    for bad in ("high", "0.9,0.8,0.7", "1.5"):
        with pytest.raises(ConfigError, match="--min-channel-r2"):
            PrecomputeConfig(videos="v", store="s.zarr", min_channel_r2=bad).fidelity_policy()


def test_precompute_help_lists_the_flag():
    out = CliRunner().invoke(app, ["precompute", "--help"], terminal_width=200).output
    assert "--min-channel-r2" in out
