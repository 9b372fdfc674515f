"""Tiny students and heads for the student-model tests."""

import pytest
import torch

from p4d.heads import DenseHeads, HeadsConfig

#: F_4D of the tiny heads: 4 taps of N' × h' × w' × c' = 2 × 2 × 2 × 16.
F4D_SHAPE = (4, 2, 2, 2, 16)
NUM_FRAMES = 4


@pytest.fixture(scope="session")
def tiny_heads_cfg() -> HeadsConfig:
    return HeadsConfig(
        embed_dim=16,
        latent_grid=(2, 2, 2),
        num_frames=NUM_FRAMES,
        image_size=(28, 28),
        feature_dim=8,
        last_dim=4,
        layer_dims=(8, 8, 16, 16),
    )


@pytest.fixture
def tiny_heads(tiny_heads_cfg) -> DenseHeads:
    torch.manual_seed(1)
    heads = DenseHeads(tiny_heads_cfg)
    heads.requires_grad_(False)
    return heads.eval()


@pytest.fixture
def clip():
    """frames (1, N, 40, 50, 3) uint8 and timestamps (1, N) seconds."""
    g = torch.Generator().manual_seed(7)
    frames = torch.randint(0, 256, (1, NUM_FRAMES, 40, 50, 3), dtype=torch.uint8, generator=g)
    timestamps = torch.tensor([[0.0, 0.5, 1.0, 1.5]])
    return frames, timestamps
