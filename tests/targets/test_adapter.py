"""CachedL4P (the cache as a drop-in for an online L4P adapter) and TargetDataset, on a real
tiny-teacher cache: a release-style loss fed from the cache equals the same loss fed by p4d's
online tiny teacher on the same clips, within the codec's error."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from p4d.cache_schema.map_codecs import MAP_QUANT
from p4d.cache_schema import open_store, read_clips
from p4d.targets import CachedL4P, MissingTargetsError, TargetDataset, open_targets
from p4d.targets.layouts import to_layout

pytestmark = pytest.mark.slow  # one precompute of 3 videos with the tiny teacher (~10 s on one core)

#: the release's weights (notes/release.md §4); the distance is MSE, depth compared in log space
WEIGHTS = {"ld": 0.01, "depth": 0.1, "flow": 0.001, "dyn": 0.01, "camray": 1e-5}


MAP_OF = {"pred_depth": "depth", "pred_flow_2d_backward": "flow", "pred_dyn_mask": "motion", "pred_camray": "camray"}


def release_style_loss(student: dict, teacher) -> dict:
    """A stand-in for the release's L_LD + sum_m w_m L_ED,m, written from the shapes alone:
    ``teacher`` has l4p_encs (B, 4, N', c', h', w') and pred_* (B, C, N, Y, X) fields."""
    parts = {
        "ld": F.mse_loss(student["l4p_encs"], teacher.l4p_encs),
        "depth": F.mse_loss(torch.log(student["pred_depth"] + 1e-8), torch.log(teacher.pred_depth + 1e-8)),
        "flow": F.mse_loss(student["pred_flow_2d_backward"], teacher.pred_flow_2d_backward),
        "dyn": F.mse_loss(student["pred_dyn_mask"], teacher.pred_dyn_mask),
        "camray": F.mse_loss(student["pred_camray"], teacher.pred_camray),
    }
    parts["total"] = sum(WEIGHTS[k] * v for k, v in parts.items())
    return parts


def online_teacher(store, videos: list[str], frames: np.ndarray):
    """p4d's online tiny teacher on the clips (video, frames): decode, teacher input, forward."""
    from p4d.targets.adapter import LowLevelPerceptionOutput
    from p4d.teacher import build_teacher, weights_hash
    from p4d.video import decode_clips
    from p4d.video.preprocess import decode_size, teacher_input

    teacher = build_teacher(store.spec.teacher["preset"], device="cpu", seed=0)
    assert weights_hash(teacher.state_dict()) == store.spec.teacher["weights_hash"]  # the cache's teacher
    size, filter_ = decode_size(store.spec.spatial)
    clips = [decode_clips(v, [f], size=size, filter=filter_)[0].frames for v, f in zip(videos, frames)]
    x = teacher_input(np.stack(clips), store.spec.spatial, store.spec.normalisation)
    with torch.no_grad():
        out = teacher(x)
    release = to_layout({k: out[k].float() for k in ("f4d", *store.spec.modalities)}, "release")
    return LowLevelPerceptionOutput(**release, taps=tuple(store.spec.taps))


def _student_like(t, seed: int) -> dict:
    """A student's predictions near the targets (so the loss is sensitive to target errors)."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for k, v in t.to_dict().items():
        noise = torch.randn(v.shape, generator=g) * 0.1
        out[k] = v * torch.exp(noise) if k == "pred_depth" else v + noise * v.std()
    return out


def test_release_style_loss_from_the_cache_equals_the_online_teachers(teacher_cache):
    store = open_store(teacher_cache.store)
    videos = [str(teacher_cache.videos / "v1.mp4"), str(teacher_cache.videos / "v0.mp4")]
    frames = read_clips(store, [4, 1], ["frame_index"])["frame_index"]
    pixels = torch.zeros(2, 3, frames.shape[1], 8, 8)
    cached = CachedL4P(teacher_cache.store)(pixels, videos=videos, frame_indices=frames)
    online = online_teacher(store, videos, frames)
    for k, v in online.to_dict().items():
        got = getattr(cached, k)
        assert got.shape == v.shape and got.dtype == torch.float32, k
        m = MAP_OF.get(k)
        if m is None or store.spec.map_codec != "quant16":
            rel = float((got - v).abs().max() / v.abs().max())
            assert rel <= 1e-3, (k, rel)  # float16 keeps ~4.9e-4 relative per element
            continue
        # quant16 maps: within the store's stated bound per element (+ the online forward's own rounding)
        err = (got / v - 1).abs().max() if m == "depth" else (got - v).abs().max()
        assert float(err) <= MAP_QUANT[m].bound + 1e-5, (k, float(err))
    student = _student_like(online, seed=0)
    from_cache, from_online = release_style_loss(student, cached), release_style_loss(student, online)
    # a target off by at most b per element moves an MSE L by at most 2 sqrt(L) b + b^2 (Cauchy-Schwarz):
    # the loss terms of quant16 maps are held to that (depth's b: its bound in log space), the rest to 1e-3
    quantised = store.spec.map_codec == "quant16"
    bound = {"depth": np.log1p(MAP_QUANT["depth"].bound), "flow": MAP_QUANT["flow"].bound,
             "dyn": MAP_QUANT["motion"].bound, "camray": MAP_QUANT["camray"].bound} if quantised else {}
    allowed = {k: 2 * float(from_online[k]) ** 0.5 * b + b * b for k, b in bound.items()}
    allowed["total"] = sum(WEIGHTS[k] * a for k, a in allowed.items())
    for k in from_online:
        diff = abs(float(from_cache[k] - from_online[k]))
        rel = diff / float(from_online[k])
        print(f"{k}: cache {float(from_cache[k]):.6g} online {float(from_online[k]):.6g} rel diff {rel:.2e}"
              + (f", allowed by the bound {allowed[k]:.2e}" if k in allowed else ""))
        assert rel <= 1e-3 or diff <= allowed.get(k, 0) + 1e-3 * float(from_online[k]), (k, rel)
    with pytest.raises(Exception, match="use .l4p_encs"):
        cached.feats_enc


def test_adapter_misses_and_fingerprint_lookup(teacher_cache, tmp_path):
    store = open_store(teacher_cache.store)
    frames = read_clips(store, [1], ["frame_index"])["frame_index"]
    moved = tmp_path / "renamed.mp4"
    shutil.copy(teacher_cache.videos / "v0.mp4", moved)  # another path, same content: joins by fingerprint
    out = CachedL4P(store)(videos=[str(moved)], frame_indices=frames)
    assert out.l4p_encs.shape[:2] == (1, len(store.spec.taps))
    with pytest.raises(MissingTargetsError, match="failed in precompute"):
        CachedL4P(store)(videos=[str(teacher_cache.videos / "bad.mp4")], frame_indices=frames)
    skip = CachedL4P(store, on_missing="skip")
    assert skip(videos=[str(teacher_cache.videos / "v0.mp4")], frame_indices=frames + 1) is None
    assert skip.reader.misses == {"other_frames": 1}


def test_dataset_with_a_dataloader_serves_the_records_targets(teacher_cache):
    root = teacher_cache.root
    v1 = read_clips(open_store(teacher_cache.store), [4], ["frame_index"])["frame_index"][0]
    records = [{"id": "a", "video": "videos/v0.mp4", "conversations": []},
               {"id": "b", "video": "videos/v1.mp4", "frame_indices": v1.tolist(), "conversations": []},
               {"id": "c", "video": "videos/bad.mp4", "conversations": []},
               {"id": "d", "video": "videos/v0.mp4", "clip": 1, "conversations": []}]
    path = root / "records.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    with pytest.raises(MissingTargetsError, match="record c: .*failed in precompute"):
        TargetDataset(path, open_targets(teacher_cache.store))
    ds = TargetDataset(path, open_targets(teacher_cache.store, on_missing="skip", device="cpu"))
    assert len(ds) == 3 and ds.skipped == ["c"] and ds.reader.misses == {"failed_clip": 1}
    loader = torch.utils.data.DataLoader(ds, batch_size=3, collate_fn=ds.collate)
    batch = next(iter(loader))
    assert [r["id"] for r in batch["records"]] == ["a", "b", "d"]
    truth = read_clips(open_store(teacher_cache.store), [1, 4, 2])
    np.testing.assert_array_equal(batch["frame_indices"].numpy(), truth["frame_index"])
    np.testing.assert_array_equal(batch["l4p_encs"].numpy(), truth["f4d"].transpose(0, 1, 2, 5, 3, 4))
    np.testing.assert_array_equal(batch["pred_depth"].numpy(), truth["depth"].transpose(0, 4, 1, 2, 3))
