"""The cache contract between precompute and train (numpy + zarr only, no torch).

CacheSpec (taps, shapes, dtypes, chunks, shards, codecs, schema version), create/open a
Zarr v3 store (local path or fsspec URL), write one shard of clips, read clip targets,
per-clip status, verify, summary. Latent codecs are implemented in numpy (bfloat16 included).

Modules: ``spec`` (CacheSpec, VideoEntry), ``codecs`` (latent codecs), ``layout`` (arrays,
chunks, shards, dimension names), ``store`` (create/open, CacheStore), ``write``
(write_shard), ``read`` (read_clip/read_clips), ``verify``, ``repair``, ``summary``, ``teachers``
(more teachers in one store, under ``teachers/<name>``).
"""

from p4d.cache_schema.codecs import (
    DEFAULT_LATENT_CODEC,
    LATENT_CODECS,
    LatentCodec,
    bfloat16_bits_to_float32,
    float32_to_bfloat16_bits,
)
from p4d.cache_schema.layout import (
    STATUS_DONE,
    STATUS_FAILED,
    STATUS_PENDING,
    ArrayLayout,
    array_layouts,
    raw_float32_bytes_per_clip,
)
from p4d.cache_schema.read import read_clip, read_clips
from p4d.cache_schema.repair import RepairReport, repair
from p4d.cache_schema.spec import MODALITIES, READABLE_SCHEMA_VERSIONS, SCHEMA_VERSION, CacheSpec, VideoEntry
from p4d.cache_schema.store import CacheStore, bind_teacher, check_arrays, create_store, open_store
from p4d.cache_schema.summary import disk_usage, format_summary
from p4d.cache_schema.verify import VerifyReport, verify
from p4d.cache_schema.write import mark_shard_failed, write_shard
from p4d.cache_schema.xarray_view import to_xarray

__all__ = [
    "SCHEMA_VERSION",
    "READABLE_SCHEMA_VERSIONS",
    "MODALITIES",
    "CacheSpec",
    "VideoEntry",
    "CacheStore",
    "create_store",
    "open_store",
    "bind_teacher",
    "RepairReport",
    "repair",
    "check_arrays",
    "write_shard",
    "mark_shard_failed",
    "to_xarray",
    "read_clip",
    "read_clips",
    "VerifyReport",
    "verify",
    "format_summary",
    "disk_usage",
    "LatentCodec",
    "LATENT_CODECS",
    "DEFAULT_LATENT_CODEC",
    "float32_to_bfloat16_bits",
    "bfloat16_bits_to_float32",
    "ArrayLayout",
    "array_layouts",
    "raw_float32_bytes_per_clip",
    "STATUS_PENDING",
    "STATUS_DONE",
    "STATUS_FAILED",
]
