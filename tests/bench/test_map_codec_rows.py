"""`p4d bench cache`'s map rows: bytes per map with quant16 against float16 from real stores, and the
max error of each map within its stated bound."""

from __future__ import annotations

from p4d.bench.cache import MAPS, map_codec_rows
from p4d.bench.synthetic_store import SHAPES, synthetic_clips
from p4d.cache_schema.map_codecs import MAP_QUANT


def test_map_rows_measure_both_stores_and_hold_the_bounds():
    rows = map_codec_rows(SHAPES["tiny"], list(synthetic_clips(SHAPES["tiny"], count=2)))
    by_entry = {r.entry: r for r in rows}
    for m in MAPS:
        row = by_entry[f"maps/{m}: quant16 vs float16"]
        assert row.candidate > 0 and row.baseline > 0
        assert 0 < row.extra["max_error"] <= MAP_QUANT[m].bound and row.checks == {"max_error<=bound": True}
    total = by_entry["maps (all four): quant16 vs float16"]
    assert total.candidate == sum(by_entry[f"maps/{m}: quant16 vs float16"].candidate for m in MAPS)
    assert total.ratio < 0.8  # natural-statistics maps at these bounds: ~0.6 of float16 (docs/cache.md)
    store = next(r for r in rows if r.entry.startswith("store,"))
    # the whole store saves what the maps save, up to side files (the per-clip error record: < 1 KB/clip)
    saved_store, saved_maps = store.extra["with_float16_maps"] - store.candidate, total.baseline - total.candidate
    assert abs(saved_store - saved_maps) < 1024
