"""Benchmarks: `python -m bench` (all), `--only edge|gateway|webhooks`, `--quick` for a short run."""
