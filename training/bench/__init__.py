"""Benchmarks: what the encoder, the head, the service and the alternatives cost on this machine.

Each is a command, `python -m training.bench.<name>`, that writes JSON under artifacts/metrics/ or
artifacts/bench/; `training.bench.benchmark` puts them side by side in artifacts/bench/benchmark.md.
"""
