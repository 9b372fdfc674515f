"""Direct reads of a store's shard files: per array, the index then the wanted chunks' byte ranges.

Zarr's generic read path costs ~2-3 ms of Python per call and array (its event loop and sync
lock), which at 11 arrays per clip is a third of a paper-shape clip's CPU time. This module
reads the same bytes the Zarr v3 ``sharding_indexed`` codec wrote, following the array's own
``zarr.json`` (never assuming a layout): the shard file's index ((offset, nbytes) uint64 per inner
chunk, then its crc32c), then each wanted inner chunk (their byte ranges coalesced only across
small gaps, so a batch of clips spread over a shard reads little more than its own bytes),
undoing the codec chain in reverse (crc32c check, zstd / blosc decompression, bytes with the
stated endianness). An array whose
codec chain holds anything else is read through zarr (:func:`supported` says which).

A missing inner chunk (index entry 2^64-1, or no shard file) of a requested clip is an error
here, never a fill value, and so is a checksum mismatch: the caller reads only done clips.
"""

from __future__ import annotations

import bisect
import json
import math
import os
import posixpath
from dataclasses import dataclass

import numpy as np
from fsspec.implementations.local import LocalFileSystem

from p4d.errors import ClipNotAvailableError

__all__ = ["ShardArray", "shard_array", "read_shard_rows", "shard_index", "wanted_chunks", "coalesce", "read_ranges"]

_MISSING = np.uint64(2**64 - 1)
# Coalescing of the wanted chunks' byte ranges (:func:`coalesce`): a gap is read through (one
# request instead of two) only when it is at most MAX_GAP bytes and the span's gap bytes stay at
# most SLACK x its wanted bytes, so the bytes read are <= 1.125 x the bytes wanted (+ the index).
MAX_GAP = 1 << 20
SLACK = 0.125
_BYTES_TO_BYTES = ("zstd", "blosc", "crc32c")


@dataclass(frozen=True)
class ShardArray:
    """What a direct reader needs to know of one sharded array (from its ``zarr.json``)."""

    path: str                    # array path inside the store, e.g. "latents/f4d"
    root: str                    # filesystem path of the array's folder
    shape: tuple[int, ...]
    dtype: np.dtype              # with the stored endianness
    shard_shape: tuple[int, ...]
    chunk_shape: tuple[int, ...]
    inner: tuple[dict, ...]      # bytes-to-bytes codecs after "bytes", in encode order
    index_crc: bool
    index_at_end: bool
    separator: str

    @property
    def chunks_per_shard(self) -> tuple[int, ...]:
        return tuple(s // c for s, c in zip(self.shard_shape, self.chunk_shape))

    def shard_key(self, shard_id: int) -> str:
        coords = (str(int(shard_id)),) + ("0",) * (len(self.shape) - 1)
        return posixpath.join(self.root, "c" + self.separator + self.separator.join(coords))


def _parse(path: str, root: str, meta: dict) -> ShardArray | None:
    """A ShardArray for metadata this reader fully understands, else None."""
    codecs = meta.get("codecs", [])
    if (len(codecs) != 1 or codecs[0].get("name") != "sharding_indexed"
            or meta.get("chunk_grid", {}).get("name") != "regular"
            or meta.get("chunk_key_encoding", {}).get("name") != "default"):
        return None
    cfg = codecs[0]["configuration"]
    shape = tuple(meta["shape"])
    shard_shape = tuple(meta["chunk_grid"]["configuration"]["chunk_shape"])
    chunk_shape = tuple(cfg["chunk_shape"])
    # every shard but the clip axis spans the whole array, and inner chunks tile it exactly
    if shard_shape[1:] != shape[1:] or any(s % c for s, c in zip(shard_shape, chunk_shape)):
        return None
    inner = list(cfg["codecs"])
    if not inner or inner[0].get("name") != "bytes" or any(c.get("name") not in _BYTES_TO_BYTES for c in inner[1:]):
        return None
    index = [c.get("name") for c in cfg.get("index_codecs", [])]
    if index not in (["bytes"], ["bytes", "crc32c"]):
        return None
    if cfg["index_codecs"][0].get("configuration", {}).get("endian", "little") != "little":
        return None
    endian = inner[0].get("configuration", {}).get("endian", "little")
    dtype = np.dtype(meta["data_type"]).newbyteorder("<" if endian == "little" else ">")
    return ShardArray(path=path, root=root, shape=shape, dtype=dtype, shard_shape=shard_shape,
                      chunk_shape=chunk_shape, inner=tuple(inner[1:]), index_crc=len(index) == 2,
                      index_at_end=cfg.get("index_location", "end") == "end",
                      separator=meta["chunk_key_encoding"].get("configuration", {}).get("separator", "/"))


def shard_array(fs, store_root: str, path: str) -> ShardArray | None:
    """Parse ``<store_root>/<path>/zarr.json``; None when its codecs are not ones read here."""
    root = posixpath.join(store_root, path)
    meta = json.loads(fs.cat_file(posixpath.join(root, "zarr.json")))
    return _parse(path, root, meta)


def _crc32c(data: bytes) -> int:
    import google_crc32c

    return google_crc32c.value(data)


def _check_crc(data: memoryview, where: str) -> memoryview:
    body, stored = data[:-4], int.from_bytes(data[-4:], "little")
    if _crc32c(bytes(body)) != stored:
        raise ClipNotAvailableError(f"{where}: crc32c checksum mismatch")
    return body


def _decode_chunk(arr: ShardArray, data: memoryview, where: str) -> np.ndarray:
    for codec in reversed(arr.inner):
        name = codec["name"]
        if name == "crc32c":
            data = _check_crc(data, where)
        elif name == "zstd":
            from numcodecs import Zstd

            data = memoryview(Zstd.decode(Zstd(), data))
        else:  # blosc: the frame carries its own settings
            from numcodecs import blosc

            data = memoryview(blosc.decompress(bytes(data)))
    out = np.frombuffer(data, dtype=arr.dtype)
    if out.size != math.prod(arr.chunk_shape):
        raise ClipNotAvailableError(f"{where}: decoded {out.size} values, expected {math.prod(arr.chunk_shape)}")
    return out.reshape(arr.chunk_shape)


def shard_index(fs, arr: ShardArray, shard_id: int, *, url: str = "", row: int = 0) -> np.ndarray:
    """The index of shard ``shard_id``'s file: (offset, nbytes) uint64 per inner chunk, shape
    (*chunks_per_shard, 2), crc32c-checked. One request (the file's last or first bytes).
    ``row`` (a clip offset in the shard) only names the clip in errors."""
    first = int(shard_id) * arr.shard_shape[0]
    key = arr.shard_key(shard_id)
    per_shard = arr.chunks_per_shard
    index_bytes = 16 * math.prod(per_shard) + (4 if arr.index_crc else 0)
    try:
        raw_index = memoryview(fs.cat_file(key, start=-index_bytes if arr.index_at_end else 0,
                                           end=None if arr.index_at_end else index_bytes))
    except FileNotFoundError:
        raise ClipNotAvailableError(
            f"clip {first + int(row)} of {url or arr.root}: the {arr.path} shard file is missing although the "
            f"clip is done; `p4d cache repair {url or arr.root}` then `p4d precompute` recomputes the shard") from None
    where = _unreadable(arr, shard_id, first + int(row), url)
    if len(raw_index) < index_bytes:
        raise ClipNotAvailableError(f"{where}: the shard file is truncated ({len(raw_index)} bytes)")
    if arr.index_crc:
        raw_index = _check_crc(raw_index, where + ": in the shard index")
    return np.frombuffer(raw_index, dtype="<u8").reshape(per_shard + (2,))


def _unreadable(arr: ShardArray, shard_id: int, clip: int, url: str) -> str:
    return (f"clip {clip} of {url or arr.root}: {arr.path} of shard {int(shard_id)} is unreadable "
            f"(torn or corrupt; `p4d cache repair {url or arr.root}` then `p4d precompute` recomputes the shard)")


def wanted_chunks(arr: ShardArray, index: np.ndarray, shard_id: int, rows: np.ndarray, *,
                  url: str = "") -> list[tuple[int, tuple[int, ...], int, int, int]]:
    """(output row, inner chunk coords, row within chunk, offset, nbytes) of every inner chunk
    holding a row of ``rows``, in row order. Raises ClipNotAvailableError for a missing chunk."""
    first = int(shard_id) * arr.shard_shape[0]
    per_shard = arr.chunks_per_shard
    rows_per_chunk = arr.chunk_shape[0]
    wanted = []
    for k, row in enumerate(rows):
        block, within = divmod(int(row), rows_per_chunk)
        for inner in np.ndindex(*per_shard[1:]):
            offset, nbytes = (int(v) for v in index[(block,) + inner])
            if offset == _MISSING or nbytes == _MISSING:
                raise ClipNotAvailableError(
                    f"clip {first + int(row)} of {url or arr.root}: a chunk of {arr.path} is missing although the "
                    f"clip is done; `p4d cache repair {url or arr.root}` then `p4d precompute` recomputes the shard")
            wanted.append((k, inner, within, offset, nbytes))
    return wanted


def coalesce(ranges: list[tuple[int, int]], *, max_gap: float = MAX_GAP, slack: float = SLACK) -> list[tuple[int, int]]:
    """Byte ranges (offset, nbytes) merged into as few (lo, hi) spans as the rules allow, sorted.

    Two neighbours (by offset) join one span when the gap between them is at most ``max_gap``
    bytes and the span's gap bytes stay at most ``slack`` x its wanted bytes; so the bytes read
    are at most (1 + slack) x the bytes wanted, whatever the clips' order in the shard. Repeated
    or overlapping ranges are read once. ``max_gap=inf, slack=inf`` gives one span over all.
    """
    spans: list[list[int]] = []  # [lo, hi, wanted bytes, gap bytes]
    for offset, nbytes in sorted(set(ranges)):
        end = offset + nbytes
        if spans:
            cur = spans[-1]
            gap = max(0, offset - cur[1])
            if gap <= max_gap and cur[3] + gap <= slack * (cur[2] + nbytes):
                cur[2] += max(0, end - max(offset, cur[1]))
                cur[1], cur[3] = max(cur[1], end), cur[3] + gap
                continue
        spans.append([offset, end, nbytes, 0])
    return [(lo, hi) for lo, hi, _, _ in spans]


def read_ranges(fs, key: str, spans: list[tuple[int, int]]) -> list[bytes]:
    """The bytes of each (lo, hi) span of file ``key``: positioned reads on one open file for a
    local filesystem, else one ``fs.cat_ranges`` call (concurrent requests on object stores)."""
    if isinstance(fs, LocalFileSystem):
        with open(fs._strip_protocol(key), "rb") as f:
            if hasattr(os, "pread"):
                return [os.pread(f.fileno(), hi - lo, lo) for lo, hi in spans]
            out = []
            for lo, hi in spans:
                f.seek(lo)
                out.append(f.read(hi - lo))
            return out
    if len(spans) == 1:
        return [fs.cat_file(key, start=spans[0][0], end=spans[0][1])]
    return list(fs.cat_ranges([key] * len(spans), [lo for lo, _ in spans], [hi for _, hi in spans],
                              on_error="raise"))


def read_shard_rows(fs, arr: ShardArray, shard_id: int, rows: np.ndarray, *, url: str = "",
                    max_gap: float = MAX_GAP, slack: float = SLACK) -> np.ndarray:
    """Rows ``rows`` (clip offsets inside shard ``shard_id``, sorted) of ``arr`` as stored,
    shape (len(rows), *shape[1:]), in the array's dtype (native byte order).

    Two round trips per call: the shard index (the file's last or first bytes), then the wanted
    chunks as coalesced byte ranges (:func:`coalesce`, :func:`read_ranges`): at most
    (1 + ``slack``) x the wanted bytes, however the rows are spread over the shard. Raises
    ClipNotAvailableError naming the clip when the file or a wanted chunk is missing, or a
    checksum or size does not match.
    """
    index = shard_index(fs, arr, shard_id, url=url, row=int(rows[0]))
    where = _unreadable(arr, shard_id, int(shard_id) * arr.shard_shape[0] + int(rows[0]), url)
    wanted = wanted_chunks(arr, index, shard_id, rows, url=url)
    spans = coalesce([(w[3], w[4]) for w in wanted], max_gap=max_gap, slack=slack)
    data = read_ranges(fs, arr.shard_key(shard_id), spans)
    for (lo, hi), got in zip(spans, data):
        if len(got) != hi - lo:
            raise ClipNotAvailableError(f"{where}: chunk bytes lie past the end of the file (truncated)")
    starts = [lo for lo, _ in spans]
    out = np.empty((len(rows),) + arr.shape[1:], dtype=arr.dtype.newbyteorder("="))
    for k, inner, within, offset, nbytes in wanted:
        s = bisect.bisect_right(starts, offset) - 1
        lo = starts[s]
        chunk = _decode_chunk(arr, memoryview(data[s])[offset - lo:offset - lo + nbytes], where)
        dst = tuple(slice(i * c, (i + 1) * c) for i, c in zip(inner, arr.chunk_shape[1:]))
        out[(k,) + dst] = chunk[within]
    return out
