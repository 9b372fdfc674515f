"""Writes ``dpcm_v1.zarr`` + ``dpcm_v1_expected.npz``: a store in the dpcm-channel layout of before the
level-1 outlier split (no ``latents/f4d_outlier_*`` arrays, no ``latent_codec_version`` in the spec),
written by that code itself. Run it with the p4d of commit 6bba59c on PYTHONPATH (not with today's):

    git archive 6bba59c p4d | tar -x -C /tmp/p4d-6bba59c
    PYTHONPATH=/tmp/p4d-6bba59c python tests/cache_schema/data/make_dpcm_v1_store.py tests/cache_schema/data

Clips: 0 level 0, 1 level 2 (outlier tokens: the old level 1 had the same step, so bfloat16),
2 level 1 (a policy between its level-0 and finest-step cosines), 3 failed. ``expected.npz`` holds
what that code's ``read_clips`` returned for clips 0-2 (decoded F_4D and the stored parts).
"""

import shutil
import sys
from pathlib import Path

import numpy as np

from p4d.bench.latents import vit_like_latents
from p4d.cache_schema import CacheSpec, VideoEntry, create_store, read_clips, write_shard
from p4d.cache_schema.codecs import LATENT_CODECS, dpcm_encode
from p4d.cache_schema.fidelity import FidelityPolicy, token_fidelity


def with_outlier_tokens(x, rng, k=3):
    out = x.copy()
    for t in range(x.shape[0]):
        flat = out[t].reshape(-1, x.shape[-1])
        sd = flat.std(axis=0)
        for tok in rng.choice(len(flat), k, replace=False):
            flat[tok] += sd * rng.uniform(30, 60, size=sd.shape) * rng.choice([-1, 1], size=sd.shape)
    return out


def main(folder: str) -> None:
    out = Path(folder)
    url = out / "dpcm_v1.zarr"
    shutil.rmtree(url, ignore_errors=True)
    spec = CacheSpec(taps=(3, 7), modalities=("depth",), num_frames=4, height=8, width=8, latent_frames=2,
                     latent_height=4, latent_width=4, latent_dim=16, ray_height=2, ray_width=2, clips_per_shard=2)
    videos = [VideoEntry(path="/videos/v0.mp4", size_bytes=1000, content_hash="h0", fps=24.0, duration=2.0,
                         num_frames=48, width=64, height=48, rotation=0, num_clips=4)]
    store = create_store(str(url), spec, videos)
    lat = [vit_like_latents(2, 2, 4, 4, 16, seed=s) for s in range(4)]
    lat[1] = with_outlier_tokens(lat[1], np.random.default_rng(1))

    def arrays(clips):
        return {"f4d": np.stack([lat[c] for c in clips]),
                "depth": np.stack([np.full((4, 8, 8, 1), c + 1.0, np.float32) for c in clips]),
                "frame_index": np.stack([np.arange(4) * 3 + c for c in clips]),
                "timestamp": np.stack([(np.arange(4) * 3 + c) / 24.0 for c in clips])}

    decode = LATENT_CODECS["dpcm-channel"].decode

    def cosines(c):  # mean token cosine at level 0 and at the old level 1 (finest step)
        return [token_fidelity(lat[c], decode(dpcm_encode(lat[c][None], step_over_rms=r))[0])["mean_cosine"]
                for r in (0.13, 0.0)]

    (a0, _), (b0, b1), (cos0, cos1) = cosines(0), cosines(1), cosines(2)
    assert max(b0, b1) < a0 and cos0 < cos1, (a0, b0, b1, cos0, cos1)
    write_shard(store, 0, arrays([0, 1]), fidelity=FidelityPolicy((a0 + max(b0, b1)) / 2, -1.0))
    write_shard(store, 1, arrays([2, 3]), failures={3: "decode error: truncated file"},
                fidelity=FidelityPolicy((cos0 + cos1) / 2, -1.0))
    levels = np.asarray(store.array("clips/latent_codec")[:])
    assert levels.tolist() == [0, 2, 1, 0], levels
    decoded = read_clips(store, [0, 1, 2], fields=["f4d"])["f4d"]
    parts = read_clips(store, [0, 1, 2], fields=["f4d"], decode=False)
    np.savez(out / "dpcm_v1_expected.npz", f4d=decoded, levels=levels, truth=np.stack(lat[:3]),
             **{f"part_{k}": v for k, v in parts.items()})
    print("wrote", url, sorted(parts))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else str(Path(__file__).parent))
