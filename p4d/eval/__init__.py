"""R4D-Bench-format evaluation: MCQ and numeric scoring, per-category and per-split
accuracy, ablation report tables.

Filled by issue #9 (p4d eval).
"""
