"""Map bytes per paper-shape clip, quant16 vs float16, on three kinds of maps: `pink` (the bench's natural_maps,
noise down to the pixel), `scene` (synthetic_clip's analytic maps at 224x224, N=16) and `blur` (those blurred,
sigma 1.5 px: a network's smooth output). Usage: python bench/map_bytes_by_statistics.py pink|scene|blur"""
import sys
import numpy as np
import torch
def gaussian_filter(x, sigma):
    s = sigma[1]; k = np.exp(-0.5 * (np.arange(-4, 5) / s) ** 2); k /= k.sum()
    t = torch.from_numpy(np.ascontiguousarray(np.moveaxis(x, -1, 1))).float()  # N C H W
    n, c, h, w = t.shape; t = t.reshape(n * c, 1, h, w)
    kt = torch.from_numpy(k).float()
    t = torch.nn.functional.conv2d(torch.nn.functional.pad(t, (4, 4, 0, 0), mode='replicate'), kt.view(1, 1, 1, 9))
    t = torch.nn.functional.conv2d(torch.nn.functional.pad(t, (0, 0, 4, 4), mode='replicate'), kt.view(1, 1, 9, 1))
    return np.moveaxis(t.reshape(n, c, h, w).numpy(), 1, -1)
from p4d.bench.cache import map_codec_rows
from p4d.bench.synthetic_store import SHAPES, synthetic_clips
from p4d.video.synthetic import synthetic_clip

shapes = SHAPES["paper"]
base = list(synthetic_clips(shapes, count=4))
kind = sys.argv[1]
clips = []
for i, c in enumerate(base):
    c = dict(c)
    if kind != "pink":
        s = synthetic_clip(list(range(0, 32, 2)), size=(224, 224), seed=i, ray_grid=(16, 16))
        for m in ("depth", "flow", "motion", "camray"):
            x = s[m].astype(np.float32)
            if m == "motion":
                x = np.where(x > 0.5, 6.0, -6.0).astype(np.float32)  # logits
            if kind == "blur" and m != "camray":
                x = gaussian_filter(x, sigma=(0, 1.5, 1.5, 0)).astype(np.float32)
            assert x.shape == c[m].shape, (m, x.shape, c[m].shape)
            c[m] = x
    clips.append(c)
for r in map_codec_rows(shapes, clips):
    print(kind, r.entry, f"{r.candidate/1e6:.3f} MB vs {r.baseline/1e6:.3f}", r.extra.get("max_error", ""))
