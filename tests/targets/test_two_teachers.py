"""Two tiny teachers in one store: the second under teachers/<name>, the root untouched for v2 readers."""

from __future__ import annotations

import dataclasses
import shutil

import numpy as np
import pytest

from p4d.cache_schema import create_store, open_store, read_clips, verify
from p4d.cache_schema.teachers import open_teacher, teacher_names, teacher_url
from p4d.errors import CacheSchemaError
from p4d.targets import MissingTargetsError, open_targets

pytestmark = pytest.mark.slow  # a second tiny-teacher precompute (~10 s on one core)

DONE = [1, 2, 3, 4]  # clip 0 is bad.mp4 (failed) in both teachers


def test_second_teacher_beside_the_first(teacher_cache, tmp_path):
    from p4d.precompute.config import PrecomputeConfig
    from p4d.precompute.job import run_precompute

    root = str(tmp_path / "cache.zarr")
    shutil.copytree(teacher_cache.store, root)
    before = read_clips(open_store(root), DONE)
    second = teacher_url(root, "second")
    run_precompute(PrecomputeConfig(videos=str(teacher_cache.videos), store=second, teacher="tiny-random", seed=1,
                                    policy="stride", clips_per_shard=3, workers=1, device="cpu", progress=False))

    # the root store reads as before: a v2 reader sees nothing new
    first = open_store(root)
    report = verify(first)
    assert report.ok, report.problems
    after = read_clips(first, DONE)
    for k in before:
        np.testing.assert_array_equal(after[k], before[k])

    # the second teacher: own hash, own shards (S=3 here), the same clip axis
    assert teacher_names(root) == ["second"]
    other = open_teacher(root, "second")
    assert other.spec.teacher["weights_hash"] != first.spec.teacher["weights_hash"]
    assert other.spec.clips_per_shard == 3 and other.status() == first.status()
    theirs = read_clips(other, DONE)
    np.testing.assert_array_equal(theirs["frame_index"], after["frame_index"])
    assert not np.allclose(theirs["f4d"], after["f4d"])  # another teacher's targets

    # p4d.targets serves either teacher by name, and tells them apart by hash
    video = str(teacher_cache.videos / "v0.mp4")
    frames = after["frame_index"][:1]
    got = open_targets(root, teacher="second", layout="p4d").get([video], frames)
    np.testing.assert_array_equal(got["f4d"], theirs["f4d"][:1])
    with pytest.raises(MissingTargetsError, match="holds teacher weights"):
        open_targets(root, teacher="second", teacher_hash=first.spec.teacher["weights_hash"]).get([video], frames)

    # a teacher store over other clips is refused
    uniform = dataclasses.replace(first.spec, sampling={**first.spec.sampling, "policy": "uniform"})
    create_store(teacher_url(root, "uniform"), uniform, first.videos)
    with pytest.raises(CacheSchemaError, match="its clips are not the root store's.*sampling"):
        open_teacher(root, "uniform")
    with pytest.raises(CacheSchemaError, match="no teacher 'third'"):
        open_teacher(root, "third")
