"""Render cached 4D maps and latents (PCA) to PNG/MP4/HTML; teacher vs student.

Never imports the teacher or precompute: everything comes from the store (maps, F_4D, frame
indices, timestamps, the D_m heads) and the source videos (decoded at the stored indices).

Modules:
- ``colors``: depth colormap + colorbar range, flow colour wheel (Baker et al.) + legend, motion
  overlay, ray directions as RGB, nearest upsampling.
- ``pca``: F_4D → RGB by PCA with one fixed basis per clip and tap.
- ``camera``: camera trajectory/frustums from the Plücker rays (``p4d.heads.geometry``), 3-D plot.
- ``clipdata``: :class:`ClipData` (one clip's targets + source frames), ``--clip`` specs.
- ``panels``: a clip as tile columns + legends; ``figure``: the PNG grid and its layout;
  ``video``: the MP4 at the source timing; ``html``: the self-contained many-clip page.
- ``compare``: teacher vs student P̂_m = D_m(F̂_4D) with per-modality errors, P̂_depth over steps.
- ``run``: :func:`inspect_store` (``p4d inspect`` as a function); ``cli``: the typer commands.
- ``view``: :func:`write_view` (``p4d view``): one clip's maps as an interactive self-contained page
  (script and style in ``view_assets/``), optionally served on 127.0.0.1.
"""


from __future__ import annotations

from p4d import lazy_exports

# Exported lazily, so that ``p4d.inspect.cli`` (imported by ``p4d --help``) stays light.
_EXPORTS = {
    "ClipData": "p4d.inspect.clipdata",
    "load_clip": "p4d.inspect.clipdata",
    "parse_clip_spec": "p4d.inspect.clipdata",
    "InspectResult": "p4d.inspect.run",
    "inspect_store": "p4d.inspect.run",
    "write_view": "p4d.inspect.view",
}

__getattr__, __all__ = lazy_exports(__name__, _EXPORTS)
