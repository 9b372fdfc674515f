"""Attention kernels against a plain softmax reference written here."""

import types

import pytest
import torch

from p4d.errors import ConfigError, MissingDependencyError
from p4d.teacher import attention
from p4d.teacher.attention import attend, check_backend, uses_xformers, xformers_ops


def reference_attention(q, k, v):
    """softmax(q kᵀ / √d) v over (B, heads, L, d), written out in float64."""
    q, k, v = q.double(), k.double(), v.double()
    scores = q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5
    weights = torch.exp(scores - scores.amax(-1, keepdim=True))
    weights = weights / weights.sum(-1, keepdim=True)
    return weights @ v


def qkv(b=2, h=4, n=37, d=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(b, h, n, d, generator=g) * 2 for _ in range(3)]


def test_sdpa_matches_reference():
    q, k, v = qkv()
    out = attend(q, k, v, backend="sdpa")
    assert out.shape == q.shape
    torch.testing.assert_close(out.double(), reference_attention(q, k, v), atol=1e-5, rtol=1e-5)


def test_math_backend_matches_reference():
    q, k, v = qkv(seed=2)
    torch.testing.assert_close(attend(q, k, v, backend="math").double(), reference_attention(q, k, v), atol=1e-5, rtol=1e-5)


def test_auto_on_cpu_is_sdpa_and_matches_reference():
    q, k, v = qkv(seed=1)
    assert not uses_xformers("auto", q.device)
    torch.testing.assert_close(attend(q, k, v).double(), reference_attention(q, k, v), atol=1e-5, rtol=1e-5)


def test_xformers_layout_path(monkeypatch):
    """The xformers path hands (B, L, heads, d) to the kernel and transposes back."""
    seen = {}

    def fake_memory_efficient_attention(q, k, v):
        seen["shape"] = tuple(q.shape)
        out = reference_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        return out.transpose(1, 2).float()

    monkeypatch.setattr(attention, "xformers_ops", lambda: types.SimpleNamespace(
        memory_efficient_attention=fake_memory_efficient_attention))
    monkeypatch.setattr(attention, "uses_xformers", lambda backend, device: True)
    q, k, v = qkv(b=1, h=3, n=10, d=8)
    out = attend(q, k, v, backend="auto")
    assert seen["shape"] == (1, 10, 3, 8)
    torch.testing.assert_close(out.double(), reference_attention(q, k, v), atol=1e-5, rtol=1e-5)


def test_backend_validation():
    with pytest.raises(ConfigError, match="expected one of auto, sdpa, xformers, math, got 'flash'"):
        check_backend("flash")
    if xformers_ops() is None:
        with pytest.raises(MissingDependencyError, match=r"p4d\[gpu\]"):
            check_backend("xformers")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available() or xformers_ops() is None, reason="needs CUDA and xformers")
def test_xformers_matches_sdpa_on_cuda():
    q, k, v = (t.cuda().half() for t in qkv(n=300, d=64))
    a = attend(q, k, v, backend="xformers")
    b = attend(q, k, v, backend="sdpa")
    torch.testing.assert_close(a.float(), b.float(), atol=2e-3, rtol=2e-3)
