"""The student (E_v + TPE + E_p + LLM + training-only D_4DP + frozen D_m), the P4D losses
(SFT + LD + ED), the cache-joined dataset and the torchrun trainer. Never imports the teacher.

Filled by issue #6 (student model, :mod:`p4d.train.model`) and issue #7 (p4d train).

Student API (``from p4d.train.model import ...``)
-------------------------------------------------

Configs and presets::

    StudentConfig(name, vision={SiglipVisionConfig fields}, llm={Qwen2Config fields}, select_layer=-2,
                  tpe="add"|"mark"|"prompt"|"off", tpe_temperature=1e4,
                  strategy="p4d"|"4d-sft"|"4d-concat"|"4d-pe", f4d_shape=None, f4d_input_tap=-1,
                  d4dp="linear"|"mlp", d4dp_time="stride"|"mean", d4dp_hidden=2560,
                  attn="eager"|"sdpa", dtype="float32"|"bfloat16"|"float16",
                  resize="bicubic"|"bilinear", image_mean, image_std, video_token="<vila/video>",
                  frame_end_token="\\n", loss=LossConfig(...))          .to_dict() / .from_dict() / .replace()
    LossConfig(ld_weight=0.01, ld="mse"|"cosine"|"smooth_l1", depth_weight=0.1, depth="log_mse"|"ssi",
               flow_weight=0.001, flow="mse"|"epe", motion_weight=0.01, motion="mse"|"bce",
               camray_weight=1e-5, camray="mse"|"smooth_l1", log_all=True)  # weight 0: logged, not trained
    student_preset("tiny" | "nvila-lite-8b" | "nvila-lite-2b", **overrides) -> StudentConfig

Model::

    build_student(cfg_or_preset_name, *, heads=None, cache_spec=None, f4d_shape=None, tokenizer=None,
                  training_modules=True, device=None, init_weights=True) -> Student
        # f4d_shape (taps, N', h', w', c') from f4d_shape > cache_spec > heads.cfg > cfg.f4d_shape;
        # tokenizer None = the in-code tiny tokenizer (tests)
    Student.forward(frames (B,N,H,W,3) uint8, timestamps (B,N) s, input_ids (B,L), attention_mask=None,
                    labels=None, targets=None, f4d=None, return_logits=False)
        -> {"loss": scalar | None, "losses": {"sft", "ld", "depth", "flow", "motion", "camray"} (unweighted,
            float32; missing targets / zero weights / no heads drop terms), "f4d_hat": (B,taps,N',h',w',c') | None,
            "hidden": F_hidden (B,N,h,w,c), "logits" (only with return_logits)}
        # targets = {"f4d": (B,taps,N',h',w',c'), "depth": (B,N,H,W,1) depth (not log), "flow": (B,N,H,W,2),
        #            "motion": (B,N,H,W,1) logits, "camray": (B,N,h_p,w_p,6)}; f4d = input F_4D for 4d-concat/4d-pe
    Student.generate(frames, timestamps, input_ids, attention_mask=None, *, f4d=None, max_new_tokens=32,
                     do_sample=False, **hf_generate_kwargs) -> (B, T) new ids (left-pad batched prompts)
    Student.encode_video(frames, timestamps, f4d=None) -> (B, N, h*w, c);  Student.gradient_checkpointing_enable()
    Student attributes: vision_tower, mm_projector, llm, f4d_embed (4d-pe), d4dp, heads, tokenizer, ids, cfg
    TRAINING_ONLY_MODULES = ("d4dp", "heads")

Tokens and prompts::

    build_tiny_tokenizer() ; save_tokenizer(tok, dir) -> fingerprint ; load_tokenizer(dir, *, fingerprint=None)  # as saved
    tokenizer_fingerprint(tok) -> sha256 of tokenizer.json ; special_ids(tokenizer, cfg) -> SpecialIds(video, frame_end, eos, pad)
    encode_chat(tokenizer, cfg, [(question, answer | None), ...], *, num_frames, timestamps=None,
                system="You are a helpful assistant.") -> {"input_ids": [...], "labels": [...]}  # -100 off answers
    pad_batch(examples, *, pad_id, side="right"|"left") -> {"input_ids", "labels", "attention_mask"} (B, L)

Checkpoints, export, trainability::

    load_nvila_lite(dir, *, config=None, heads=None, cache_spec=None, f4d_shape=None, training_modules=True,
                    device=None, base=NVILA_LITE_8B, **cfg_overrides) -> Student   # llm/, vision_tower/, mm_projector/
    config_from_checkpoint(dir, *, base=NVILA_LITE_8B, **overrides) ; load_nvila_lite_weights(model, dir)
    export_student(model, dir) -> Path        # NVILA-Lite layout + p4d_student.json (+ f4d_embed/ for 4d-pe)
    load_exported_student(dir, *, device=None, attn=None, dtype=None) -> Student   # no D_4DP, no heads;
        # device/dtype None = auto: CUDA when available, bf16 there and fp32 on the CPU (model/placement.py)
    apply_trainability(model, "tune-all"|"tune-v"|"tune-p"|"tune-llm"|"tune-p+llm"|"tune-llm-lora"|"tune-p+llm-lora",
                       *, lora=LoraSettings(r=64, alpha=16, dropout=0.05)) -> {part: trainable count}
    merge_lora(model) -> int                  # before export_student

Losses (float32 scalars, 0 at equality): sft_loss, latent_loss, depth_loss (pre-exp log-depth vs cached
depth), flow_loss (frames 1..N-1), motion_loss, camray_loss; TPE: timestamp_pe, time_prompt, mark_timestamps.

Trainer API (issue #7; ``from p4d.train import ...``, loaded lazily)
-------------------------------------------------------------------

    TrainConfig (config.py: sections data, model, recipe, loss, lora, optim, augment, checkpoint, log, runtime,
                 expect; .validate(), .to_dict(), .save(path)) ; resolve_config(config_file=None, overrides=None)
    main(cfg) -> TrainResult(out, steps, last, checkpoint, export, data)      # trainer.py; torchrun-aware
    load_exported_student(dir, *, cache=None, attn=None, dtype=None, device=None) -> StudentAnswerer
        .answer(frames (N,H,W,3) uint8, timestamps (N,) s, question_text, options, video=None) -> str
        .answer_batch([{frames, timestamps, question_text, options, ...}, ...]) -> [str]   # left-padded greedy
    load_checkpoint_model(checkpoint_or_run_dir, *, cache=None, device="cpu") -> (Student, TrainConfig)
    make_demo_conversations(video_dir, out_jsonl) ; run_demo_training(video_dir, store, out, ...)   # demo.py
    train_command (cli.py): the typer command behind ``p4d train``; ``python -m p4d.train`` for torchrun.

Modules: config (YAML + flags), data (records joined with the cache), loader (dataset, shard-then-clip
sampler, spawn DataLoader), augment (flip replay), build (student/optimizer/schedule factories, cache
checks, the sharded build), checkpoint (named parts + meta.json; ``Checkpointer(model, optimizer, scheduler,
lora=).save(out, step=, ...)`` / ``.load(folder)`` for whole and sharded students), rng_state, sharding (FSDP2
placement of a built student), meta_device, logs (JSONL/tqdm/TensorBoard), distributed, trainer, export.
"""

from p4d import lazy_exports

_LAZY = {
    "TrainConfig": "p4d.train.config",
    "resolve_config": "p4d.train.config",
    "main": "p4d.train.trainer",
    "TrainResult": "p4d.train.trainer",
    "load_exported_student": "p4d.train.export",
    "export_trained": "p4d.train.export",
    "load_checkpoint_model": "p4d.train.checkpoint",
    "make_demo_conversations": "p4d.train.demo",
    "run_demo_training": "p4d.train.demo",
}

__getattr__, __all__ = lazy_exports(__name__, _LAZY)
