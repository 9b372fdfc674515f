"""Video input: PyAV decoding, clip sampling (N frames, timestamps in seconds), resize,
synthetic test/demo videos, and (later) the SoM region-mark renderer.
"""
