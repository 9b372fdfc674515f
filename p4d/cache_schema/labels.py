"""What every reader shows about the teacher that wrote a store.

A store written by a randomly initialised teacher (``p4d precompute --random-weights``, or the
``tiny`` preset without ``--teacher-weights``) carries ``spec.teacher["random_weights"] = True``;
summary, PNG, MP4 and HTML views then say :data:`RANDOM_TEACHER_LABEL` so random maps are never
mistaken for real depth or flow.
"""

from __future__ import annotations

from p4d.cache_schema.spec import CacheSpec

RANDOM_WEIGHTS_KEY = "random_weights"
RANDOM_TEACHER_LABEL = "RANDOM TEACHER"


def is_random_teacher(spec: CacheSpec) -> bool:
    """True when the store's teacher had random weights (its maps show the pipeline, not the scene)."""
    return bool(spec.teacher.get(RANDOM_WEIGHTS_KEY, False))


def teacher_label(spec: CacheSpec) -> str:
    """``"teacher l4p/tiny, RANDOM TEACHER (random weights: maps are not real depth/flow)"`` or the weights hash."""
    base = f"teacher {spec.teacher.get('name')}/{spec.teacher.get('preset')}"
    if is_random_teacher(spec):
        return f"{base}, {RANDOM_TEACHER_LABEL} (random weights: maps are not real depth/flow)"
    return f"{base} weights {spec.teacher.get('weights_hash') or 'n/a'}"
