"""p4d.bench.train: the paper-size estimate behind the step-time goal."""

import pytest


def test_paper_step_estimate_uses_the_published_sizes():
    """Qwen2-7B blocks by hand: 28 x (2*3584^2 + 2*3584*512 + 3*3584*18944) = 6,525,288,448
    (+ 2 x 152064 x 3584 embeddings = the published 7.6 B); 16 frames x 122 tokens + 64 text."""
    from p4d.bench.train import paper_step_estimate

    full, lora = paper_step_estimate("nvila-lite-8b"), paper_step_estimate("nvila-lite-8b", lora=True)
    assert full["llm block params"] == 6_525_288_448
    assert full["tokens"] == 16 * 122 + 64
    assert lora["student TFLOP"] < full["student TFLOP"]
    assert 0 < full["ratio"] < 1 and full["ratio"] == pytest.approx(
        full["student TFLOP"] / (full["student TFLOP"] + full["teacher TFLOP"]))
