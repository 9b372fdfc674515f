"""The teacher batch job: plan shards, decode, teacher forward, encode, write, mark done,
on dask.distributed; resumable and idempotent per shard.

Filled by issue #5 (p4d precompute).
"""
