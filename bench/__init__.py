"""Benchmarks: `python -m bench.<name>` prints results and writes bench/results/<name>.json."""
