"""What one parsed evaluation-key set costs the server in memory, per head point (RSS, measured).

    python -m training.bench.key_memory [--points fast accurate] [--sets 3]

For each point a client generates keys and encrypts two vectors here; then a fresh process (nothing else in
its heap) loads the point's server circuits, batched ones included, and reads its RSS (the baseline); it then
parses `--sets` copies of the evaluation keys one after another, runs a comparison with each (and a batched
run where the point has one: the runtime prepares keys on their first run), drops the serialized bytes and
keeps the parsed keys, reading its RSS after each. The growth per key set held is the mean over the sets after
the first; what the first set adds beyond that is the runtime's own one-time start. Compared with the size the
server counts per set (`FHEServer.key_set_bytes`, from the key parameters). Writes the figures, and the bound
they give the server's RSS under default limits, to artifacts/metrics/key_memory.json:

    baseline + runtime start + sets the key cache may hold x a set + in flight x transient

where the transient is the most a parse and its first runs needed beyond what they keep (the process's peak
RSS over its final), and in flight are two upload checks (each parses a key set and drops it) and the cache's
parses and first runs (two parses at a time, a first run per worker: max(2, cores)).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from fhe_head.artifacts import CLIENT_SPECS_FILE
from fhe_head.client import FHEClient
from fhe_head.server import FHEServer, key_set_bytes
from fhe_head.service.state import Limits
from training.machine import machine_info, rss_bytes
from training.paths import METRICS

OUT = METRICS / "key_memory.json"


def _measure(point: str, folder: Path, sets: int) -> dict:
    """In a fresh process: RSS with the circuits loaded, then after each key set parsed, run and kept."""
    server = FHEServer(point)
    template, probe = (folder / "template").read_bytes(), (folder / "probe").read_bytes()
    baseline, held, steps = rss_bytes(), [], []
    for _ in range(sets):
        data = (folder / "keys").read_bytes()
        keys = server.load_evaluation_keys(data)
        parsed = rss_bytes()
        server.run(template, probe, keys)
        if server.batch_sizes:
            server.run_many([template] * server.batch_sizes[0], probe, keys)
        del data
        held.append(keys)
        steps.append({"parsed_rss_bytes": parsed, "warm_rss_bytes": rss_bytes()})
    return {
        "baseline_rss_bytes": baseline,
        "steps": steps,
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }


def measure_point(point: str, sets: int) -> dict:
    client = FHEClient(point)
    client.generate_keys()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        keys = client.evaluation_keys()
        (folder / "keys").write_bytes(keys)
        for name in ("template", "probe"):
            (folder / name).write_bytes(client.encrypt(client.head.mean + rng.normal(0, 0.3, client.head.mean.size)))
        with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as child:
            raw = child.submit(_measure, point, folder, sets).result()
    warm = [step["warm_rss_bytes"] for step in raw["steps"]]
    per_set = (warm[-1] - warm[0]) / (sets - 1)
    counted = key_set_bytes(json.loads((client.directory / CLIENT_SPECS_FILE).read_text())["keyset"])
    first_extra = round(warm[0] - raw["baseline_rss_bytes"] - per_set)
    transient = raw["peak_rss_bytes"] - warm[-1]  # the most a parse and its first runs needed beyond what they keep
    # Under default limits, over the started server: the key sets the cache may hold (in use or being parsed
    # included), and what is in flight beside them: two upload checks (each parses a key set and drops it) and
    # the parses and first runs of the cache (two parses at a time, a first run per worker).
    limits, workers = Limits(), os.cpu_count() or 1
    cached = min(limits.key_cache_items, limits.key_cache_bytes // counted)
    in_flight = 2 + max(2, workers)
    bound = raw["baseline_rss_bytes"] + first_extra + cached * max(per_set, counted) + in_flight * transient
    return {
        "circuit_id": client.meta["circuit_id"],
        "serialized_bytes": len(keys),
        "parsed_set_rss_bytes": round(per_set),
        "ratio_to_serialized": round(per_set / len(keys), 2),
        "counted_set_bytes": counted,
        "measured_over_counted": round(per_set / counted, 3),
        "first_set_extra_rss_bytes": first_extra,
        "transient_rss_bytes": transient,
        "default_limits": {"key_cache_items": limits.key_cache_items, "key_cache_bytes": limits.key_cache_bytes},
        "workers": workers,
        "sets_cached_at_most": cached,
        "in_flight_at_most": in_flight,
        "rss_bound_bytes": round(bound),
        **raw,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", nargs="+", default=["fast", "accurate"])
    parser.add_argument("--sets", type=int, default=3, help="key sets parsed and held (at least 2)")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    if args.sets < 2:
        parser.error("--sets: at least 2 (the growth per set is measured between sets)")
    points = {}
    for point in args.points:
        points[point] = measure_point(point, args.sets)
        print(point, json.dumps({k: v for k, v in points[point].items() if k != "steps"}), flush=True)
    out = {
        "command": "python -m training.bench.key_memory " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": machine_info(),
        "what": "RSS of a fresh server process (circuits loaded), then per evaluation-key set parsed, run once "
        "(and batched where built) and held; parsed_set_rss_bytes: the mean growth per set after the first; "
        "counted_set_bytes: what the server's key cache counts per set",
        "rss_bound": "baseline + first_set_extra + sets_cached_at_most * max(parsed_set, counted_set) "
        "+ in_flight_at_most * transient (2 upload checks + max(2 parses, a first run per worker))",
        "points": points,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
