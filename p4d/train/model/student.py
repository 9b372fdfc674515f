"""The student (4D-RGPT on NVILA-Lite, paper Sec. 4): E_v (SigLIP) + TPE + E_p (projector) +
LLM (Qwen2), with the training-only D_4DP and frozen D_m heads of the P4D strategy.

Forward: frames (B, N, H, W, 3) uint8 + timestamps (B, N) s + token ids whose video block is
already expanded (:func:`~p4d.train.model.tokenizer.encode_chat`) → loss dict. Each frame gives
h×w visual tokens (11×11 at 448 px) plus the frame-end token; the LLM's last hidden states at the
visual positions form F_hidden (B, N, h, w, c), which D_4DP maps to F̂_4D (Eq. 3) and the frozen
heads decode to P̂_m (Eq. 4).
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any, Mapping

import torch
from torch import Tensor, nn

from p4d.errors import ConfigError
from p4d.train.model import losses as L
from p4d.train.model.config import StudentConfig, resolve_attn, student_preset
from p4d.train.model.d4dp import D4DP
from p4d.train.model.f4d_input import F4DPositionalEncoding, f4d_to_patch_grid
from p4d.train.model.projector import NvilaLiteProjector
from p4d.train.model.tokenizer import build_tiny_tokenizer, special_ids
from p4d.train.model.tpe import mark_timestamps, timestamp_pe
from p4d.train.model.vision import check_frames, preprocess_frames, to_student_size, vision_features

log = logging.getLogger(__name__)

#: Submodules that exist only for training (dropped by export).
TRAINING_ONLY_MODULES = ("d4dp", "heads")


def _hf_configs(cfg: StudentConfig):
    from transformers import Qwen2Config, SiglipVisionConfig

    vision = SiglipVisionConfig.from_dict({k: v for k, v in cfg.vision.items() if k != "model_type"})
    llm = Qwen2Config.from_dict({k: v for k, v in cfg.llm.items() if k != "model_type"})
    return vision, llm


class Student(nn.Module):
    """See the module docstring. Build with :func:`build_student`.

    Attributes: ``vision_tower`` (SiglipVisionModel), ``mm_projector`` (NvilaLiteProjector),
    ``llm`` (Qwen2ForCausalLM), optional ``f4d_embed`` (4d-pe), ``d4dp`` (p4d, training), ``heads``
    (frozen DenseHeads or None), ``tokenizer`` and ``ids`` (:class:`SpecialIds`), ``cfg``.
    """

    def __init__(
        self,
        cfg: StudentConfig,
        *,
        tokenizer,
        heads: nn.Module | None = None,
        training_modules: bool = True,
        init_weights: bool = True,
    ) -> None:
        super().__init__()
        from transformers import AutoModel, AutoModelForCausalLM
        from transformers.initialization import no_init_weights

        self.cfg = cfg
        self.tokenizer = tokenizer
        self.ids = special_ids(tokenizer, cfg)
        if len(tokenizer) > cfg.llm["vocab_size"]:
            raise ConfigError(
                f"tokenizer: {len(tokenizer)} tokens do not fit the LLM vocab_size {cfg.llm['vocab_size']}"
            )
        if cfg.needs_f4d_input and cfg.f4d_shape is None:
            raise ConfigError(f"strategy {cfg.strategy!r}: needs StudentConfig.f4d_shape (taps, N', h', w', c')")
        vision_cfg, llm_cfg = _hf_configs(cfg)
        # auto: decided for the device the model is built on (build_student(device=...)); see place_attention
        hf_kwargs = dict(attn_implementation=resolve_attn(cfg.attn), dtype=cfg.torch_dtype)
        with no_init_weights() if not init_weights else contextlib.nullcontext():
            self.vision_tower = AutoModel.from_config(vision_cfg, **hf_kwargs)
            self.llm = AutoModelForCausalLM.from_config(llm_cfg, **hf_kwargs)
        d = cfg.vision_width
        c4 = cfg.f4d_shape[-1] if cfg.f4d_shape else 0
        in_dim = d + c4 if cfg.strategy == "4d-concat" else d
        self.mm_projector = NvilaLiteProjector(in_dim, 3 * d, cfg.llm_width).to(cfg.torch_dtype)
        if cfg.strategy == "4d-pe":
            self.f4d_embed = F4DPositionalEncoding(c4, d).to(cfg.torch_dtype)
        self.d4dp: D4DP | None = None
        self.heads = None
        if training_modules and cfg.distills:
            if cfg.f4d_shape is None:
                raise ConfigError(
                    "strategy 'p4d': D_4DP needs the cache's F_4D shape; pass heads, cache_spec or f4d_shape"
                )
            self.d4dp = D4DP(cfg.llm_width, cfg.f4d_shape, cfg.d4dp_hidden, head=cfg.d4dp, time=cfg.d4dp_time).to(cfg.torch_dtype)
            if heads is not None:
                heads.requires_grad_(False)
                heads.eval()
                self.heads = heads
        elif heads is not None:
            log.info("strategy %r: the D_m heads are not used and were not attached", cfg.strategy)
        if cfg.gradient_checkpointing:
            self.gradient_checkpointing_enable()

    # ---- modes ---------------------------------------------------------------------------
    def train(self, mode: bool = True) -> "Student":
        super().train(mode)
        if self.heads is not None:
            self.heads.eval()  # frozen D_m stays in eval mode
        return self

    def gradient_checkpointing_enable(self) -> None:
        """Activation checkpointing in E_v and the LLM (non-reentrant)."""
        for part in (self.vision_tower, self.llm):
            if hasattr(part, "activation_checkpointing_enable"):  # transformers >= 5.24 (the old name warns)
                part.activation_checkpointing_enable({"use_reentrant": False})
            else:
                part.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})

    def place_attention(self, device: torch.device | str) -> str:
        """Re-decide ``attn="auto"`` for ``device`` after a move (a model built on the CPU and moved to
        CUDA switches to flash_attention_2 when installed); returns the implementation in use."""
        impl = resolve_attn(self.cfg.attn, device)
        for part in (self.vision_tower, self.llm):
            if part.config._attn_implementation != impl:
                part.set_attn_implementation(impl)
        return impl

    @property
    def device(self) -> torch.device:
        return self.llm.lm_head.weight.device

    # ---- encoding ------------------------------------------------------------------------
    def encode_video(self, frames: Tensor, timestamps: Tensor, f4d: Tensor | None = None, *, tpe: bool = True) -> Tensor:
        """E_p(E_v(I) + TPE): (B, N, H, W, 3) uint8 + (B, N) s → (B, N, h·w, c) LLM tokens.
        ``tpe=False`` skips the time cue for this call (image records: no timestamps)."""
        cfg = self.cfg
        b, n = check_frames(frames, timestamps)
        frames = to_student_size(frames, cfg)  # before the marks, as the loader does in training
        if cfg.tpe == "mark" and tpe:
            frames = mark_timestamps(frames, timestamps)
        dtype = self.mm_projector.layers[2].weight.dtype
        pixels = preprocess_frames(frames.to(self.device), cfg, dtype=dtype)
        feats = vision_features(self.vision_tower, pixels, cfg.select_layer)  # (B·N, P, D)
        if cfg.tpe == "add" and tpe:
            pe = timestamp_pe(timestamps.to(feats.device), cfg.vision_width, cfg.tpe_temperature)
            feats = feats + pe.reshape(b * n, 1, -1).to(feats.dtype)
        if cfg.needs_f4d_input:
            if f4d is None:
                raise ConfigError(f"f4d: strategy {cfg.strategy!r} needs the cached F_4D as input, found None")
            want = (b, *cfg.f4d_shape)
            if tuple(f4d.shape) != want:
                raise ConfigError(f"f4d: expected shape {want}, found {tuple(f4d.shape)}")
            grid = f4d_to_patch_grid(f4d.to(feats.device), cfg.f4d_input_tap, n, cfg.patch_grid)
            if cfg.strategy == "4d-pe":
                feats = feats + self.f4d_embed(grid).to(feats.dtype)
            else:
                feats = torch.cat([feats, grid.to(feats.dtype)], dim=-1)
        tokens = self.mm_projector(feats)
        return tokens.reshape(b, n, tokens.shape[1], tokens.shape[2])

    def embed(
        self, frames, timestamps, input_ids: Tensor, f4d: Tensor | None = None, *, tpe: bool = True
    ) -> tuple[Tensor, Tensor]:
        """LLM input embeddings with the visual tokens scattered in; returns (embeds, video mask)."""
        b, n = check_frames(frames, timestamps)
        if input_ids.dim() != 2 or input_ids.shape[0] != b:
            raise ConfigError(f"input_ids: expected (B, L) with B = {b}, found {tuple(input_ids.shape)}")
        mask = input_ids == self.ids.video
        per_frame = self.cfg.token_grid[0] * self.cfg.token_grid[1]
        counts = mask.sum(1).tolist()
        if any(c != n * per_frame for c in counts):
            raise ConfigError(
                f"input_ids: expected {n} frames × {per_frame} video tokens = {n * per_frame} per row "
                f"(id {self.ids.video}), found {counts}; build the ids with encode_chat(num_frames={n})"
            )
        visual = self.encode_video(frames, timestamps, f4d, tpe=tpe)
        embeds = self.llm.get_input_embeddings()(input_ids)
        embeds = embeds.masked_scatter(mask.unsqueeze(-1), visual.to(embeds.dtype))
        return embeds, mask

    # ---- training forward ----------------------------------------------------------------
    def forward(
        self,
        frames: Tensor,
        timestamps: Tensor,
        input_ids: Tensor,
        attention_mask: Tensor | None = None,
        labels: Tensor | None = None,
        targets: Mapping[str, Tensor] | None = None,
        f4d: Tensor | None = None,
        return_logits: bool = False,
        tpe: bool = True,
        log_untrained: bool = True,
    ) -> dict[str, Any]:
        """Returns {"loss": scalar or None, "losses": {term: unweighted float32 scalar},
        "f4d_hat": (B, taps, N', h', w', c') or None, "hidden": F_hidden (B, N, h, w, c),
        "logits": (B, L, vocab) only with return_logits}.

        targets: cache targets {"f4d", "depth", "flow", "motion", "camray"}; a missing key (or
        weight 0, or no heads) drops its term. f4d: input F_4D for 4d-concat / 4d-pe.
        tpe: False skips the time cue (``add``/``mark``) for this batch (image records).
        log_untrained: with ``loss.log_all``, compute the weight-0 terms (LD, ED) for the log; the trainer
        sets it only on logged steps (``--log.every``), so the weight-0 heads cost nothing in between.
        """
        cfg = self.cfg
        b, n = check_frames(frames, timestamps)
        input_ids = input_ids.to(self.device)
        embeds, mask = self.embed(frames, timestamps, input_ids, f4d, tpe=tpe)
        if attention_mask is not None:
            attention_mask = attention_mask.to(self.device)
        hidden = self.llm.model(inputs_embeds=embeds, attention_mask=attention_mask).last_hidden_state
        h, w = cfg.token_grid
        f_hidden = hidden[mask].reshape(b, n, h, w, hidden.shape[-1])
        out: dict[str, Any] = {"losses": {}, "hidden": f_hidden, "f4d_hat": None}
        terms: dict[str, Tensor] = out["losses"]
        total: Tensor | None = None
        if labels is not None:
            terms["sft"] = L.sft_loss(hidden, labels.to(self.device), self.llm.lm_head)
            total = terms["sft"]
        if return_logits:
            out["logits"] = self.llm.lm_head(hidden)
        if targets and self.d4dp is not None:
            weighted = self._distillation_terms(f_hidden, targets, out, log_untrained=log_untrained)
            for name, value in weighted.items():
                total = value if total is None else total + value
        out["loss"] = total
        return out

    def _distillation_terms(self, f_hidden: Tensor, targets: Mapping[str, Tensor], out: dict, *,
                            log_untrained: bool = True) -> dict[str, Tensor]:
        """L_LD and Δ_m (unweighted into out["losses"]); returns the weighted terms. Weight-0 terms are
        computed without gradient for the log when ``loss.log_all`` and ``log_untrained``."""
        lc = self.cfg.loss
        terms = out["losses"]
        weighted: dict[str, Tensor] = {}
        f4d_hat = self.d4dp(f_hidden)
        out["f4d_hat"] = f4d_hat
        log_zero = lc.log_all and log_untrained
        if "f4d" in targets and lc.ld_weight > 0:
            terms["ld"] = L.latent_loss(f4d_hat, targets["f4d"], lc.ld)
            weighted["ld"] = lc.ld_weight * terms["ld"]
        elif "f4d" in targets and log_zero:  # weight 0: logged only, like ED
            with torch.no_grad():
                terms["ld"] = L.latent_loss(f4d_hat.detach(), targets["f4d"], lc.ld)
        present = [m for m in self.heads.heads if m in targets] if self.heads is not None else []
        trained = [m for m in present if lc.weight(m) > 0]
        logged = [m for m in present if lc.weight(m) == 0] if log_zero else []
        heads_dtype = next(self.heads.parameters()).dtype if present else None
        if trained:
            # the heads' outputs before their activations: log-depth for depth, the maps otherwise
            preds = self.heads(f4d_hat.to(heads_dtype), modalities=trained, raw=True)
            for m in trained:
                terms[m] = L.MAP_LOSSES[m](preds[m], targets[m], lc.kind(m))
                weighted[m] = lc.weight(m) * terms[m]
        if logged:  # weight 0: logged only, as the release logs every modality's ED
            with torch.no_grad():
                preds = self.heads(f4d_hat.detach().to(heads_dtype), modalities=logged, raw=True)
                for m in logged:
                    terms[m] = L.MAP_LOSSES[m](preds[m], targets[m], lc.kind(m))
        return weighted

    # ---- inference -----------------------------------------------------------------------
    @torch.no_grad()
    def generate(
        self,
        frames: Tensor,
        timestamps: Tensor,
        input_ids: Tensor,
        attention_mask: Tensor | None = None,
        *,
        f4d: Tensor | None = None,
        max_new_tokens: int = 32,
        do_sample: bool = False,
        **generate_kwargs: Any,
    ) -> Tensor:
        """Answer ids (B, T ≤ max_new_tokens) after the prompt (left-padded for batches; see
        :func:`~p4d.train.model.tokenizer.pad_batch`); greedy by default, stops at <|im_end|>."""
        input_ids = input_ids.to(self.device)
        embeds, _ = self.embed(frames, timestamps, input_ids, f4d)
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        return self.llm.generate(
            inputs_embeds=embeds,
            attention_mask=attention_mask.to(self.device),
            max_new_tokens=max_new_tokens,
            do_sample=do_sample,
            eos_token_id=self.ids.eos,
            pad_token_id=self.ids.pad,
            **generate_kwargs,
        )


def resolve_f4d_shape(
    cfg: StudentConfig, *, heads=None, cache_spec=None, f4d_shape=None
) -> tuple[int, int, int, int, int] | None:
    """(taps, N', h', w', c') from, in order: f4d_shape, cache_spec, heads.cfg, cfg.f4d_shape."""
    if f4d_shape is not None:
        return tuple(int(v) for v in f4d_shape)
    if cache_spec is not None:
        s = cache_spec
        return (len(s.taps), s.latent_frames, s.latent_height, s.latent_width, s.latent_dim)
    if heads is not None:
        return (heads.cfg.num_taps, *heads.cfg.tap_shape())
    return cfg.f4d_shape


def build_student(
    cfg: StudentConfig | str,
    *,
    heads: nn.Module | None = None,
    cache_spec=None,
    f4d_shape: tuple[int, int, int, int, int] | None = None,
    tokenizer=None,
    training_modules: bool = True,
    device: torch.device | str | None = None,
    init_weights: bool = True,
) -> Student:
    """Build a :class:`Student` from a config or preset name.

    heads: frozen D_m (``p4d.heads.load_heads(...)``), or None (no ED terms).
    cache_spec / f4d_shape: the F_4D shape D_4DP predicts (CacheSpec: ``len(taps)``,
    ``latent_frames/height/width/dim``); defaults to the heads' tap shape. Stored in the
    returned model's ``cfg.f4d_shape``.
    tokenizer: the checkpoint's tokenizer; None builds the tiny in-code tokenizer (tests).
    training_modules: False leaves out D_4DP and D_m (inference / export).
    device: build directly there (``"meta"`` for shape-only builds of the real sizes).
    init_weights: False skips the random init of E_v and the LLM (they are loaded next).
    """
    if isinstance(cfg, str):
        cfg = student_preset(cfg)
    shape = resolve_f4d_shape(cfg, heads=heads, cache_spec=cache_spec, f4d_shape=f4d_shape)
    if shape != cfg.f4d_shape:
        cfg = cfg.replace(f4d_shape=shape)
    if heads is not None and shape is not None:
        want = (heads.cfg.num_taps, *heads.cfg.tap_shape())
        if tuple(shape) != want:
            raise ConfigError(
                f"heads: the D_m heads read F_4D of shape (taps, N', h', w', c') = {want}, "
                f"but the student predicts {tuple(shape)} (cache_spec / f4d_shape)"
            )
    if tokenizer is None:
        tokenizer = build_tiny_tokenizer()
    with torch.device(device) if device is not None else contextlib.nullcontext():
        model = Student(cfg, tokenizer=tokenizer, heads=heads, training_modules=training_modules, init_weights=init_weights)
    if heads is not None and device is not None and str(device) != "meta":
        model.heads.to(device)
    return model
