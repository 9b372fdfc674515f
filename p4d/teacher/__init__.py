"""The frozen L4P teacher: the VideoMAE v2 ViT-g/14 encoder E_4D, wiring to p4d.heads,
checkpoint key mapping and presets (l4p, tiny).

Filled by issue #4 (the L4P teacher and the shared D_m heads).
"""
