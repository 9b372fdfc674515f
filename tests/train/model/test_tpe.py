import math

import pytest
import torch

from p4d.train.model import build_student, encode_chat, mark_timestamps, time_prompt, timestamp_pe
from p4d.train.model.config import TINY
from p4d.train.model.vision import preprocess_frames

# Eq. 5 by hand for D = 6, T = 10000: exponents 2i/D = 0, 1/3, 2/3.
HAND_TABLE = {
    1.0: [0.8414709848078965, 0.5403023058681398, 0.046399223464731285, 0.9989229760406304,
          0.0021544330233656045, 0.9999976792064809],
    2.5: [0.5984721441039565, -0.8011436155469337, 0.11577947944579693, 0.993274942872949,
          0.005386060683450818, 0.9999854950699606],
    0.0: [0.0, 1.0, 0.0, 1.0, 0.0, 1.0],
}


def test_timestamp_pe_matches_hand_table():
    t = torch.tensor(list(HAND_TABLE))
    pe = timestamp_pe(t, 6, 10000.0)
    assert pe.shape == (3, 6)
    assert torch.allclose(pe, torch.tensor(list(HAND_TABLE.values())), atol=1e-6)


def test_timestamp_pe_small_temperature_by_hand():
    # D = 4, T = 100: p = [sin t, cos t, sin(t/10), cos(t/10)]
    pe = timestamp_pe(torch.tensor([2.0]), 4, 100.0)[0]
    expected = [math.sin(2.0), math.cos(2.0), math.sin(0.2), math.cos(0.2)]
    assert pe.tolist() == pytest.approx(expected, abs=1e-6)


def _projector_input(model, frames, timestamps):
    seen = {}
    handle = model.mm_projector.register_forward_pre_hook(lambda mod, args: seen.setdefault("x", args[0].detach()))
    try:
        model.encode_video(frames, timestamps)
    finally:
        handle.remove()
    pixels = preprocess_frames(frames, model.cfg)
    raw = model.vision_tower(pixel_values=pixels, output_hidden_states=True).hidden_states[-2]
    return seen["x"], raw.detach()


@pytest.mark.parametrize("mode", ["add", "off"])
def test_tpe_added_before_projector(mode, clip):
    torch.manual_seed(0)
    model = build_student(TINY.replace(tpe=mode, strategy="4d-sft")).eval()
    frames, timestamps = clip
    x, raw = _projector_input(model, frames, timestamps)
    d = TINY.vision["hidden_size"]
    assert x.shape == (4, 16, d)  # N frames × 4×4 patches × D (E_v width)
    added = x - raw
    if mode == "off":
        assert torch.equal(added, torch.zeros_like(added))
        return
    # every patch of frame n gets the same D-dim sinusoid of t_n (T = 10000), computed here by hand
    for n, t in enumerate(timestamps[0].tolist()):
        want = []
        for k in range(d):
            angle = t / 10000.0 ** ((k - k % 2) / d)
            want.append(math.sin(angle) if k % 2 == 0 else math.cos(angle))
        assert torch.allclose(added[n], torch.tensor(want).expand(16, d), atol=1e-5)


def test_mark_burns_time_into_top_left_only():
    frames = torch.full((1, 2, 48, 64, 3), 128, dtype=torch.uint8)
    marked = mark_timestamps(frames, torch.tensor([[0.0, 12.5]]))
    changed = (marked != frames).any(-1)  # (1, 2, H, W)
    assert changed[0, 0].any() and changed[0, 1].any()
    rows, cols = torch.nonzero(changed[0, 1], as_tuple=True)
    assert rows.max() < 24 and cols.max() < 48  # a corner label, not the whole frame
    assert not torch.equal(changed[0, 0], changed[0, 1])  # "0.0s" and "12.5s" differ
    assert torch.equal(frames, torch.full_like(frames, 128))  # input untouched


def test_prompt_variant_adds_duration_sentence():
    model_cfg = TINY.replace(tpe="prompt")
    from p4d.train.model import build_tiny_tokenizer

    tok = build_tiny_tokenizer()
    sentence = "The video lasts 1.5 seconds; 4 frames were sampled at 2.00 fps, at 0.0s, 0.5s, 1.0s, 1.5s. "
    assert time_prompt([0.0, 0.5, 1.0, 1.5]) == sentence
    ids = encode_chat(tok, model_cfg, [("Where?", "Here")], num_frames=4, timestamps=[0.0, 0.5, 1.0, 1.5])
    text = tok.decode(ids["input_ids"])
    assert sentence + "Where?" in text
    plain = encode_chat(tok, TINY, [("Where?", "Here")], num_frames=4)
    assert "The video lasts" not in tok.decode(plain["input_ids"])
