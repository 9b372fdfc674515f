"""`p4d teacher info`: parameter counts by hand, FLOPs against torch's FlopCounterMode."""

import torch
from torch.utils.flop_counter import FlopCounterMode

from p4d.heads import DenseHeads
from p4d.teacher.info import conv_flops, encoder_flops, format_info, teacher_stats
from p4d.teacher.model import build_teacher
from p4d.teacher.presets import get_preset


def test_l4p_info_numbers():
    s = teacher_stats("l4p")
    assert s["params"]["encoder"] == 1_011_610_752  # hand formula in test_encoder.py
    assert s["params"]["total"] == s["params"]["encoder"] + sum(v for k, v in s["params"].items() if k.startswith("heads."))
    assert s["shapes"]["f4d"] == (1, 4, 8, 16, 16, 1408)
    assert s["shapes"]["camray"] == (1, 16, 16, 16, 6)
    # notes/l4p.md §1: ~4.1 TFLOP linear + ~0.9 TFLOP attention over all 40 blocks of one window
    full = encoder_flops(get_preset("l4p"))
    assert 4.0e12 < full["linear"] < 4.2e12 and 0.85e12 < full["attention"] < 0.95e12
    text = format_info("l4p")
    for needle in ("1,011,610,752", "(1, 4, 8, 16, 16, 1408)", "(1, 16, 224, 224, 2)", "heads.camray", "TFLOP"):
        assert needle in text


def test_encoder_flops_match_flop_counter():
    p = get_preset("tiny")
    enc = build_teacher("tiny").encoder
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        enc.forward_intermediates(torch.randn(1, 3, 16, 112, 112), [p.depth])
    counts = {str(k): v for k, v in fc.get_flop_counts()["Global"].items()}
    ours = encoder_flops(p)
    assert counts["aten.convolution"] == ours["patch_embed"]
    assert counts["aten.addmm"] == ours["linear"]
    # attention written as plain matmuls, counted by torch
    L, d, heads = p.num_tokens, p.head_dim, p.num_heads
    q = torch.randn(1, heads, L, d)
    with FlopCounterMode(display=False) as fc:
        (q @ q.transpose(-1, -2)).softmax(-1) @ q
    assert p.depth * fc.get_total_flops() == ours["attention"]


def test_head_conv_flops_match_flop_counter():
    p = get_preset("tiny")
    taps = [torch.randn(1, 8, 8, 8, 64) for _ in range(4)]
    for modality in ("depth", "camray"):
        heads = DenseHeads(p.heads_config((modality,)))
        with FlopCounterMode(display=False) as fc, torch.no_grad():
            heads(taps)
        assert conv_flops(heads, taps) == fc.get_total_flops()


def test_unknown_preset_names_the_flag():
    import pytest

    from p4d.errors import ConfigError

    with pytest.raises(ConfigError, match=r"--preset 'big': unknown preset \(known: l4p, tiny, tiny-random\)"):
        format_info("big")
