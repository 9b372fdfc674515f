"""Render cached 4D maps and latents (PCA) to PNG/MP4/HTML; teacher vs student.

Filled by issue #8 (p4d inspect).
"""
