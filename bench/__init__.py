"""Benchmarks: each prints ratios measured side by side in one run on the same machine."""
