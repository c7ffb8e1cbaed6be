"""Where training and the benchmarks write their figures: under the artifacts tree (committed in a checkout)."""

from __future__ import annotations

from privface_core.resources import artifacts_dir, metrics_dir

METRICS = metrics_dir()
BENCH_DIR = artifacts_dir() / "bench"
FRONTIER = METRICS / "fhe_frontier.json"
HEAD_BENCH = METRICS / "fhe_head_bench.json"
LFW_FHE = METRICS / "lfw_fhe.json"
