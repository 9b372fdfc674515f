"""The numpy reference decoder printed in docs/design.md decodes dpcm-channel clips (levels 0 and 1, the
latter with its outlier tokens) and bfloat16 fallback clips exactly as read_clips does."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import zarr

from p4d.cache_schema import STATUS_DONE, read_clips, write_shard
from p4d.cache_schema.fidelity import FidelityPolicy

from .helpers import shard_arrays

DOC = Path(__file__).resolve().parents[2] / "docs" / "design.md"


def reference_decoder():
    """The ```python block of the section "Reading the cache without p4d", executed as a user would paste it."""
    text = DOC.read_text()
    section = text[text.index("## Reading the cache without p4d"):]
    code = next(c for c in re.findall(r"```python\n(.*?)```", section, re.S) if "def decode_f4d" in c)
    body = [line for line in code.splitlines() if line.strip() and not line.lstrip().startswith(("import", '"""'))]
    assert len(body) <= 17, f"the reference decoder grew to {len(body)} lines"  # 13 + 4 for level 1's outliers
    namespace: dict = {}
    exec(compile(code, str(DOC), "exec"), namespace)
    return namespace["decode_f4d"]


def test_reference_decoder_matches_read_clips(filled):
    decode_f4d = reference_decoder()
    g = zarr.open_group(filled.url, mode="r")
    assert g["latents/f4d"].attrs["codec"] == "dpcm-channel"
    status = g["clips/status"][:]
    levels = g["clips/latent_codec"][:]
    done = [i for i in range(filled.num_clips) if status[i] == STATUS_DONE and levels[i] != 2]
    assert len(done) >= 5
    has_outliers = (g["latents/f4d_outlier_index"][:] >= 0).reshape(filled.num_clips, -1).any(axis=1)
    assert 1 in set(levels[done]) and has_outliers[done].tolist() == (levels[done] == 1).tolist()
    truth = read_clips(filled, done, fields=["f4d"])["f4d"]
    for row, clip in enumerate(done):
        ours = decode_f4d(filled.url, clip)
        assert ours.dtype == np.float32 and ours.shape == truth[row].shape
        np.testing.assert_array_equal(ours, truth[row])


def test_reference_decoder_reads_bfloat16_fallback_clips(store):
    # shard 0 under a policy no quantised codec can meet (cosine 1.0): its clips fall back to bfloat16
    # (level 2); shard 1 under the default policy stays quantised (level 0 or 1)
    write_shard(store, 0, shard_arrays(store, 0), fidelity=FidelityPolicy(1.0, 1.0))
    write_shard(store, 1, shard_arrays(store, 1))
    decode_f4d = reference_decoder()
    per_shard = store.spec.clips_per_shard
    levels = zarr.open_group(store.url, mode="r")["clips/latent_codec"][:2 * per_shard]
    assert set(levels[:per_shard]) == {2} and set(levels[per_shard:]) <= {0, 1}
    clips = list(range(2 * per_shard))
    truth = read_clips(store, clips, fields=["f4d"])["f4d"]
    for clip in clips:
        np.testing.assert_array_equal(decode_f4d(store.url, clip), truth[clip])
