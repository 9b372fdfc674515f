"""The cache contract between precompute and train (numpy + zarr only, no torch).

CacheSpec (taps, shapes, dtypes, chunks, shards, codecs, schema version), create/open a
Zarr v3 store (local path or fsspec URL), write one shard of clips, read clip targets,
per-clip status, verify. Latent codecs are implemented in numpy (bfloat16 included).
"""
