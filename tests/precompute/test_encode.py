"""The torch F_4D encoder (the GPU path, run here on CPU tensors) against the numpy reference codecs."""

import numpy as np
import pytest
import torch

from p4d.bench.latents import crushed_tokens, vit_like_latents
from p4d.cache_schema import CacheSpec, VideoEntry, create_store, write_shard
from p4d.cache_schema.codecs import LATENT_CODECS
from p4d.errors import CacheSchemaError
from p4d.precompute.encode import all_finite, dpcm_encode, encode_latents


def _hard_latents(seed: int = 0) -> np.ndarray:
    """(3 clips, 2 taps, 2, 4, 4, 32): ViT-like channels over a 1e-3..1e3 range, a constant, a zero
    and a denormal-bearing channel, and a channel whose values sit on exact .5 steps."""
    rng = np.random.default_rng(seed)
    x = np.stack([vit_like_latents(2, 2, 4, 4, 32, seed=seed + i) for i in range(3)]).astype(np.float32)
    x *= np.exp(rng.uniform(-7, 7, 32)).astype(np.float32)
    x[0, 0, ..., 3] = 2.5
    x[1, 1, ..., 4] = 0.0
    x[2, 0, 0, 0, 0, 5] = 1e-40
    x[..., 6] = rng.integers(-8, 8, x.shape[:-1]) * 0.5
    return x


@pytest.mark.parametrize("block", [None, 1, 4])
def test_dpcm_encode_is_bit_exact_with_numpy(block):
    x = _hard_latents()
    want = LATENT_CODECS["dpcm-channel"].encode(x)
    got = dpcm_encode(torch.from_numpy(x), block=block)
    for name, ref in want.items():
        value = got[name].numpy()
        assert value.dtype == ref.dtype and value.shape == ref.shape
        assert value.tobytes() == ref.tobytes(), name


@pytest.mark.parametrize("block", [None, 1, 4])
def test_level1_outlier_split_is_bit_exact_with_numpy(block):
    """Level 1 (per channel 8 tokens kept exactly, the rest at their finest step) on the hard latents,
    whose .5-step channel has many tokens tied at the 8th largest |x - mean|: the same tokens are
    chosen, every part has the same bytes."""
    from p4d.cache_schema.codecs import dpcm_encode as numpy_dpcm

    x = _hard_latents(3)
    x[0, 1, 0, 0, :3, :] *= 50.0  # three tokens scaled 50x
    want = numpy_dpcm(x, step_over_rms=0.0, outliers=True)
    got = dpcm_encode(torch.from_numpy(x), step_over_rms=0.0, outliers=True, block=block)
    assert sorted(got) == sorted(want) and (want["f4d_outlier_index"] >= 0).all()
    for name, ref in want.items():
        value = got[name].numpy()
        assert value.dtype == ref.dtype and value.shape == ref.shape
        assert value.tobytes() == ref.tobytes(), name


def test_encoded_parts_decode_within_half_a_step():
    x = _hard_latents(1)
    parts = encode_latents("dpcm-channel", torch.from_numpy(x))
    y = LATENT_CODECS["dpcm-channel"].decode(parts)
    step = parts["f4d_scale"][..., None, None, None, :]
    assert np.all(np.abs(y - x) <= 0.5 * step * (1 + 1e-6) + 1e-30)


@pytest.mark.parametrize("codec", ["float16-zstd", "bfloat16", "int8-channel"])
def test_every_codec_encodes_like_its_numpy_reference(codec):
    x = _hard_latents(2)
    got, want = encode_latents(codec, torch.from_numpy(x)), LATENT_CODECS[codec].encode(x)
    assert sorted(got) == sorted(want)
    for name in want:
        assert got[name].tobytes() == want[name].tobytes(), name


def test_non_finite_latents_are_refused_and_detected_per_clip():
    x = _hard_latents()
    x[1, 0, 1, 2, 3, 4] = np.nan
    x[2, 1, 0, 0, 0, 0] = -np.inf
    with pytest.raises(CacheSchemaError, match="finite"):
        encode_latents("dpcm-channel", torch.from_numpy(x))
    assert all_finite(torch.from_numpy(x)).tolist() == [True, False, False]


def _store(tmp_path, name):
    spec = CacheSpec(taps=(1, 2), num_frames=2, height=8, width=8, latent_frames=2, latent_height=4, latent_width=4,
                     latent_dim=32, ray_height=2, ray_width=2, clips_per_shard=3)
    videos = [VideoEntry(path="/v.mp4", size_bytes=1, content_hash="h", fps=24.0, duration=1.0, num_frames=24,
                         width=8, height=8, rotation=0, num_clips=3)]
    return create_store(str(tmp_path / name), spec, videos)


def test_write_shard_stores_device_encoded_parts_byte_for_byte_like_floats(tmp_path):
    """The same shard written from float32 (numpy encoder + self-check) and from torch-encoded,
    torch-checked parts: every stored array is identical, the failed clip included."""
    from p4d.cache_schema.write import DEFAULT_FIDELITY
    from p4d.precompute.encode import encode_checked

    a, b = _store(tmp_path, "a.zarr"), _store(tmp_path, "b.zarr")
    rng = np.random.default_rng(0)
    x = _hard_latents()[:, :, :, :, :, :32]
    arrays = {m: rng.standard_normal((3, *a.spec.map_shape(m))).astype(np.float32) for m in a.spec.modalities}
    arrays.update(frame_index=np.arange(6).reshape(3, 2), timestamp=np.arange(6, dtype=np.float32).reshape(3, 2))
    fails = {1: "decode error"}
    write_shard(a, 0, dict(arrays, f4d=x), fails)
    enc = encode_checked("dpcm-channel", torch.from_numpy(x), DEFAULT_FIDELITY)
    assert enc["levels"].max() >= 1  # these wide-range clips exercise the fallbacks
    write_shard(b, 0, dict(arrays, f4d=enc), fails)
    for path in a.layouts:
        assert np.array_equal(a.array(path)[:], b.array(path)[:], equal_nan=True), path
    with pytest.raises(CacheSchemaError, match="f4d_scale"):
        parts = encode_latents("dpcm-channel", torch.from_numpy(x))
        parts["f4d_scale"] = parts["f4d_scale"].astype(np.float16)
        write_shard(b, 0, dict(arrays, f4d=parts))


def test_device_self_check_matches_the_numpy_one_level_for_level():
    """The clips test_fidelity builds to fail (ViT-like; half the tokens 1000x smaller; plus an outlier):
    the torch check picks the same levels, stores the same bytes, reports the same figures."""
    from p4d.cache_schema.fidelity import FALLBACK_PART, FidelityPolicy
    from p4d.cache_schema.fidelity import encode_checked as numpy_checked
    from p4d.precompute.encode import encode_checked

    base = vit_like_latents(2, 2, 8, 8, 256, seed=3)
    x = np.stack([base, crushed_tokens(base, outlier=False), crushed_tokens(base, outlier=True)])
    policy = FidelityPolicy()
    parts, bf16, levels, stats = numpy_checked("dpcm-channel", x, np.ones(3, bool), policy)
    got = encode_checked("dpcm-channel", torch.from_numpy(x), policy)
    assert got["levels"].tolist() == levels.tolist() and levels[0] == 0 and levels[1] >= 1 and levels[2] == 2
    for name, ref in parts.items():
        assert got[name].tobytes() == ref.tobytes(), name
    assert got[FALLBACK_PART].tobytes() == bf16.tobytes()
    for mine, ref in zip(got["fidelity"], stats):
        assert mine["level"] == ref["level"]
        assert mine["mean_cosine"] == pytest.approx(ref["mean_cosine"], abs=1e-6)
        assert mine["worst_cosine"] == pytest.approx(ref["worst_cosine"], abs=1e-6)


def test_device_self_check_takes_outlier_clips_at_level_1_like_numpy():
    """Clips with outlier tokens: both checks pick level 1 (the outlier split), store the same bytes."""
    from p4d.cache_schema.fidelity import FidelityPolicy
    from p4d.cache_schema.fidelity import encode_checked as numpy_checked
    from p4d.precompute.encode import encode_checked

    x = np.stack([vit_like_latents(2, 2, 8, 8, 128, seed=s) for s in (5, 6)])
    x[:, :, 1, 2, 3:5, :] += 60.0 * x.std(axis=(2, 3, 4))[:, :, None]  # two tokens per tap 60 SD out in every channel
    parts, bf16, levels, _ = numpy_checked("dpcm-channel", x, np.ones(2, bool), FidelityPolicy())
    got = encode_checked("dpcm-channel", torch.from_numpy(x), FidelityPolicy())
    assert levels.tolist() == [1, 1] and got["levels"].tolist() == [1, 1] and bf16 is None
    for name, ref in parts.items():
        assert got[name].tobytes() == ref.tobytes(), name
