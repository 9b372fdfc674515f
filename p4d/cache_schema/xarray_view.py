"""The cache as one ``xarray.Dataset``: named dimensions, coordinates, targets decoded lazily.

``to_xarray(store)`` gives every clip's targets as dask-backed float32 DataArrays (each
``.compute()`` / ``.values`` reads and decodes only the clips it touches, through
:func:`~p4d.cache_schema.read_clips`); clips that are not done read as NaN. Coordinates:
``clip``, ``frame_index`` and ``timestamp`` (clip, frame) as stored, ``video`` (clip) as the
source video's path string, ``status`` (clip) as ``"pending" | "done" | "failed"``, ``tap``
as the encoder layer. Maps with one channel (depth, motion) lose their size-1 channel axis::

    ds = p4d.cache_schema.to_xarray("cache.zarr")
    ds.depth.sel(clip=3).isel(frame=0).plot()              # (y, x) float32
    ds.f4d.sel(tap=36).mean(["h4d", "w4d"]).values          # (clip, t4d, c4d)

``decode=False`` instead wraps the stored arrays as they are (latent codec parts, float16 maps),
lazily through dask, with the same coordinates.
"""

from __future__ import annotations

from p4d.cache_schema.layout import MAP_DIMS, STATUS_DONE, array_layouts
from p4d.cache_schema.read import read_clips
from p4d.cache_schema.store import CacheStore, open_store
from p4d.errors import require_package

STATUS_NAMES = ("pending", "done", "failed")
SQUEEZED = {"depth_c", "motion_c"}   # size-1 channel axes dropped in the Dataset


def _clip_block(store: CacheStore, name: str, done: tuple[bool, ...], shape: tuple[int, ...], block_id=None):
    """One clip of field ``name``, decoded float32 (NaN for a clip that is not done)."""
    import numpy as np

    clip = block_id[0]
    if not done[clip]:
        return np.full((1, *shape), np.nan, np.float32)
    return read_clips(store, [clip], fields=[name])[name].reshape(1, *shape)


def _coords(store: CacheStore, status) -> dict:
    import numpy as np

    paths = np.array([v.path for v in store.videos], dtype=object)
    video = store.array("clips/video")[:]
    return {
        "clip": np.arange(store.num_clips),
        "tap": ("tap", np.asarray(store.spec.taps)),
        "frame_index": (("clip", "frame"), store.array("clips/frame_index")[:]),
        "timestamp": (("clip", "frame"), store.array("clips/timestamp")[:]),
        "video": ("clip", np.array([str(paths[v]) if 0 <= v < len(paths) else "" for v in video], dtype=str)),
        "status": ("clip", np.array([STATUS_NAMES[s] if s < len(STATUS_NAMES) else "unknown" for s in status],
                                    dtype=str)),
    }


def to_xarray(store: CacheStore | str, *, decode: bool = True):
    """The store as an ``xarray.Dataset`` (see the module docstring); needs xarray and dask."""
    require_package("xarray", "xarray")
    import dask.array as da
    import numpy as np
    import xarray as xr

    store = open_store(store) if isinstance(store, str) else store
    spec = store.spec
    status = store.clip_status()
    data_vars = {}
    if decode:
        done = tuple(bool(s == STATUS_DONE) for s in status)
        fields = {"f4d": (("clip", "tap", "t4d", "h4d", "w4d", "c4d"),
                          (len(spec.taps), spec.latent_frames, spec.latent_height, spec.latent_width, spec.latent_dim))}
        for m in spec.modalities:
            dims = MAP_DIMS[m]
            fields[m] = (dims, store.array(f"maps/{m}").shape[1:])
        for name, (dims, shape) in fields.items():
            lazy = da.map_blocks(_clip_block, store, name, done, tuple(shape), dtype=np.float32,
                                 chunks=((1,) * store.num_clips, *((n,) for n in shape)),
                                 meta=np.empty((0,) * (1 + len(shape)), np.float32))
            data_vars[name] = _squeeze(xr.DataArray(lazy, dims=dims))
    else:
        for lay in array_layouts(spec, store.num_clips).values():
            if lay.group in ("latents", "maps"):
                arr = store.array(lay.path)
                data_vars[lay.path.split("/", 1)[1]] = _squeeze(xr.DataArray(da.from_zarr(arr), dims=lay.dims))
    ds = xr.Dataset(data_vars, coords=_coords(store, status))
    ds.attrs.update({"store": store.url, "latent_codec": spec.latent_codec, "map_codec": spec.map_codec,
                     "decoded": decode})
    return ds


def _squeeze(array):
    drop = [d for d in array.dims if d in SQUEEZED and array.sizes[d] == 1]
    return array.squeeze(drop) if drop else array

