"""Benchmarks that print ratios measured side by side in one run.

Filled by issue #3 (the bench harness, cache and loader benchmarks).
"""
