"""The validated configuration of one ``p4d precompute`` run.

Every check runs in :meth:`PrecomputeConfig.validate` before a cluster starts, and each message
names the flag to change.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from p4d.cache_schema.fidelity import FidelityPolicy
from p4d.errors import ConfigError
from p4d.video.sampling import SAMPLING_POLICIES

DTYPES = ("bf16", "fp16", "fp32", "auto")
DEVICES = ("auto", "cpu", "cuda")
DECODERS = ("auto", "cpu", "gpu")
MODALITIES = ("depth", "flow", "motion", "camray")


@dataclass(kw_only=True)
class PrecomputeConfig:
    videos: str                          # VIDEOS: folder, .txt list or conversation .json/.jsonl
    store: str                           # STORE: local path or fsspec URL
    teacher: str = "l4p"                 # --teacher preset
    weights: str | None = None           # --teacher-weights: local .ckpt/.safetensors (None: the preset's shipped weights, else seeded random init)
    random_weights: bool = False         # --random-weights: accept a randomly initialised teacher (l4p has no default weights)
    taps: tuple[int, ...] | None = None  # --taps: encoder layers stored as F_4D and tapped by the heads (None: the preset's)
    num_frames: int = 16                 # --num-frames N
    policy: str = "uniform"              # --policy
    frame_stride: int = 1                # --frame-stride
    modalities: tuple[str, ...] = MODALITIES  # --modalities
    codec: str | None = None             # --codec (None: the cache's default)
    map_codec: str | None = None         # --map-codec quant16 | float16 (None: a store's own; quant16 for a new store)
    clips_per_shard: int = 16            # --clips-per-shard S
    batch_size: int = 2                  # --batch-size: clips per teacher forward
    dtype: str = "auto"                  # --dtype: bf16 | fp16 | fp32 | auto (bf16 on CUDA, fp32 on CPU)
    device: str = "auto"                 # --device
    decoder: str = "auto"                # --decoder: auto | cpu (PyAV) | gpu (NVDEC, p4d[gpu]); resolved in each worker
    allow_mixed_precision: bool = False  # --allow-mixed-precision: resume a store computed with another dtype/device class
    scheduler: str | None = None         # --scheduler ADDRESS of an existing dask cluster
    workers: int | None = None           # --workers (local cluster; default: one per GPU, else 1)
    threads_per_worker: int = 2          # --threads-per-worker: shards in flight per worker
    retries: int = 2                     # --retries: dask retries of a shard whose task raised
    retry_failed: bool = False           # --retry-failed
    force: bool = False                  # --force
    max_pixels: int | None = None        # --max-pixels: cap on a video's declared frame size
    seed: int = 0                        # --seed of a random-init teacher
    video_root: str | None = None        # --video-root for relative paths in a conversation file
    shards: tuple[int, int] | None = None  # --shards START:END: only shards in [START, END) (several processes, one store)
    teacher_input: str = "release"       # --teacher-input: release (via the student's S x S frames) | direct
    student_size: int = 448              # --student-size S of the release transform (NVILA-Lite: 448)
    progress: bool = True
    min_cosine: str | None = None        # --min-cosine MEAN[,WORST]: the codec self-check's thresholds (None: 0.999,0.995)
    min_channel_r2: str | None = None    # --min-channel-r2 MEAN[,WORST]: its channel-balanced thresholds (None: 0.99,0.95)
    stand_in_rate: float | None = None   # benchmarks only: a stand-in teacher at this many clips/s per worker
    extra: dict = field(default_factory=dict)

    def validate(self) -> PrecomputeConfig:
        def bad(flag: str, expected: str, got) -> ConfigError:
            return ConfigError(f"--{flag}: expected {expected}, got {got!r}")

        from p4d.teacher.presets import get_preset

        get_preset(self.teacher, flag="--teacher")  # a misspelt name first, before the weights it would need
        if self.policy not in SAMPLING_POLICIES:
            raise bad("policy", " | ".join(SAMPLING_POLICIES), self.policy)
        if str(self.store).startswith("memory://"):
            raise ConfigError(f"STORE {self.store}: a memory:// store lives in one process and dies with it; "
                              "the dask workers cannot see it. Give a local path or a shared URL (s3://, gs://)")
        if self.dtype not in DTYPES:
            raise bad("dtype", " | ".join(DTYPES), self.dtype)
        if self.device not in DEVICES:
            raise bad("device", " | ".join(DEVICES), self.device)
        if self.decoder not in DECODERS:
            raise bad("decoder", " | ".join(DECODERS), self.decoder)
        unknown = [m for m in self.modalities if m not in MODALITIES]
        if unknown or not self.modalities:
            raise bad("modalities", f"a comma-separated subset of {','.join(MODALITIES)}", ",".join(self.modalities))
        for flag, value, low in (("clips-per-shard", self.clips_per_shard, 1), ("batch-size", self.batch_size, 1),
                                 ("threads-per-worker", self.threads_per_worker, 1), ("retries", self.retries, 0),
                                 ("num-frames", self.num_frames, 1), ("frame-stride", self.frame_stride, 1)):
            if not isinstance(value, int) or value < low:
                raise bad(flag, f"an integer >= {low}", value)
        if self.workers is not None and self.workers < 1:
            raise bad("workers", "an integer >= 1", self.workers)
        if self.scheduler is not None and self.workers is not None:
            raise ConfigError("--workers sizes a local cluster; it cannot be combined with --scheduler ADDRESS")
        if self.shards is not None and not (0 <= self.shards[0] < self.shards[1]):
            raise bad("shards", "START:END with 0 <= START < END", f"{self.shards[0]}:{self.shards[1]}")
        if self.taps is not None and (not self.taps or list(self.taps) != sorted(set(self.taps)) or min(self.taps) < 0):
            raise bad("taps", "strictly increasing, non-negative encoder layer indices", ",".join(map(str, self.taps)))
        if self.force and self.retry_failed:
            raise ConfigError("--force already redoes every shard; drop --retry-failed")
        self._validate_weights()
        self.fidelity_policy()
        return self

    def fidelity_policy(self) -> FidelityPolicy:
        """The codec self-check's thresholds (flags --min-cosine, --min-channel-r2; :mod:`p4d.cache_schema.fidelity`)."""
        return FidelityPolicy.parse(self.min_cosine, self.min_channel_r2)

    def _validate_weights(self) -> None:
        """Without --teacher-weights: ``tiny`` runs its shipped (trained) weights, ``tiny-random`` its seeded
        random init; any other teacher runs with random weights only when asked to (--random-weights)."""
        from pathlib import Path

        if self.weights is not None:
            if self.random_weights:
                raise ConfigError(f"--random-weights and --teacher-weights {self.weights}: choose one")
            if "://" not in self.weights and not Path(self.weights).is_file():
                raise ConfigError(f"--teacher-weights {self.weights}: no such file (expected a local .ckpt or "
                                  ".safetensors, e.g. l4p_depth_flow_2d3dtrack_camray_dynseg_v1.ckpt)")
        elif self.teacher not in ("tiny", "tiny-random") and not self.random_weights:
            raise ConfigError(
                f"--teacher {self.teacher} without --teacher-weights would run a RANDOMLY initialised teacher "
                "(its maps and latents mean nothing); pass --teacher-weights FILE (the released L4P .ckpt), "
                "or --random-weights to run it anyway (smoke tests, benchmarks)")

    def to_dict(self) -> dict:
        return asdict(self)
