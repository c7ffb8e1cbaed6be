"""1:N identification scaling: embedded engine vs Ray workers, batched circuits vs one comparison per run.

    python -m training.bench.identify_scaling [--sizes 16 64 256] [--accurate-sizes 16] [--batch-k 4 8 16]

1. Batching, per head: for each K, K one-per-run comparisons against one run of the K-template circuit
   (compiled under the 1:1 key set, `fhe_head.circuit.compile_batched`), interleaved, real FHE; the K with the
   lowest ratio is the head's choice (1 = one per run when no K wins). Every bit is checked against the
   clear integer model.
2. Identification latency for N templates (fast head; accurate at small N): the embedded engine
   (`LocalEngine`, a thread pool over this machine's cores) and `RayEngine` on a loopback cluster of 1 and
   2 worker nodes of one CPU each (`ray start`, Ray's own CLI), one-per-run and batched.
3. A prediction (labelled so) of 1/2/4/8-worker scaling from the measured per-template cost and Ray's
   measured overhead, when no bigger machine was measured.

Writes artifacts/metrics/identify_scaling.json and identify_scaling.png. This machine is shared: designs
are measured side by side in one run; absolute times are noisy.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from fhe_head.artifacts import CLIENT_SPECS_FILE, HEAD_FILE, META_FILE, point_dir
from fhe_head.build import save_batched
from fhe_head.circuit import compile_batched
from fhe_head.client import FHEClient
from fhe_head.head import HeadParams
from fhe_head.server import FHEServer
from fhe_head.service.engine import LocalEngine
from training.machine import machine_info, machine_label
from training.paths import METRICS

OUT = METRICS / "identify_scaling.json"
NS_PREDICTED = (16, 64, 256, 1024)


class Owner:
    """A key owner with random enrolled people; the probe is one of them again (the clear model decides)."""

    def __init__(self, point: str | Path, n: int, seed: int = 0) -> None:
        self.client = FHEClient(point)
        self.client.generate_keys()
        self.keys = self.client.evaluation_keys()
        head = self.client.head
        rng = np.random.default_rng(seed)
        embeddings = head.mean + rng.normal(0, 0.3, (n, head.mean.size))
        self.match = n // 3
        self.templates = [self.client.encrypt(e) for e in embeddings]
        self.probe = self.client.encrypt(embeddings[self.match])
        q = head.quantize(embeddings)
        self.expected = [bool(head.decide(q[i], q[self.match])) for i in range(n)]

    def check(self, results: list[tuple[bytes, float]], n: int) -> None:
        bits = [self.client.decrypt(r) for r, _ in results]
        if bits != self.expected[:n]:
            raise SystemExit(f"wrong identification: {sum(b != e for b, e in zip(bits, self.expected, strict=False))}")


def _timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def measure_batching(point: str, ks: list[int], reps: int) -> dict:
    directory = point_dir(point)
    meta = json.loads((directory / META_FILE).read_text())
    params = HeadParams.load(directory / HEAD_FILE)
    specs = (directory / CLIENT_SPECS_FILE).read_bytes()
    owner = Owner(point, max(ks))
    one = FHEServer(point, batched=False)
    keys = one.load_evaluation_keys(owner.keys)
    rows = {}
    for k in ks:
        compile_s, circuit = _timed(lambda k=k: compile_batched(params, specs, meta["p_error"], k))
        batched = FHEServer(point, batched=False)
        batched.add_batch(k, circuit.server)
        templates = owner.templates[:k]
        singles, batches = [], []
        batched.run_many(templates, owner.probe, keys)  # warm-up
        for _ in range(reps):  # interleaved: both designs see the same machine load
            t, out = _timed(lambda t=templates: [one.run(x, owner.probe, keys) for x in t])
            owner.check([(r, 0.0) for r in out], k)
            singles.append(t / k)
            t, out = _timed(lambda t=templates, b=batched: b.run_many(t, owner.probe, keys))
            owner.check([(r, 0.0) for r in out], k)
            batches.append(t / k)
        stats = circuit.statistics
        rows[str(k)] = {
            "one_per_run_s_per_template": statistics.median(singles),
            "batched_s_per_template": statistics.median(batches),
            "ratio": statistics.median(batches) / statistics.median(singles),
            "one_per_run_s_per_template_each_rep": singles,
            "batched_s_per_template_each_rep": batches,
            "batched_faster_in_every_rep": all(b < s for b, s in zip(batches, singles, strict=True)),
            "complexity_batched": float(stats["complexity"]),
            "complexity_one_per_run_times_k": float(meta["complexity"]) * k,
            "programmable_bootstrap_count": int(stats["programmable_bootstrap_count"]),
            "p_error_per_bootstrap": float(stats["p_error"]),
            "p_error_any_of_k_answers": float(stats["global_p_error"]),
            "compile_s": compile_s,
            "repetitions": reps,
        }
        print(point, "K =", k, json.dumps(rows[str(k)]), flush=True)
    best = min(rows, key=lambda k: rows[k]["ratio"])
    # A win inside the noise is no reason to ship: it must hold in every interleaved repetition and be > 5%.
    wins = rows[best]["ratio"] < 0.95 and rows[best]["batched_faster_in_every_rep"]
    chosen = int(best) if wins else 1
    return {
        "by_k": rows,
        "chosen_k": chosen,
        "batched_over_unbatched_ratio": rows[best]["ratio"] if chosen > 1 else 1.0,
        "best_k_measured": int(best),
        "best_k_ratio": rows[best]["ratio"],
        "same_key_set_as_1to1": True,  # compile_batched refuses any other key set
        "p_error_per_answer": meta["global_p_error"],
        "p_error_per_answer_note": "each answer depends on its own bootstraps only, with the 1:1 parameters: "
        "the same error probability per answer as the 1:1 run (global_p_error of the 1:1 circuit)",
        "one_per_run_complexity": float(meta["complexity"]),
    }


def run_identify(engine, point: str, owner: Owner, n: int) -> dict:
    engine.identify(point, "bench", owner.templates[: min(n, 4)], owner.probe)  # keys parsed, workers warm
    wall, results = _timed(lambda: engine.identify(point, "bench", owner.templates[:n], owner.probe))
    owner.check(results, n)
    return {"n": n, "wall_s": wall, "per_template_s": wall / n, "throughput_per_s": n / wall}


def batched_copy(point: str, k: int, root: Path) -> str:
    """The point's artifacts with batched circuits beside them, in a temporary folder (shipped ones untouched)."""
    target = root / point
    shutil.copytree(point_dir(point), target)
    save_batched(target, [k])
    return str(target)


def measure_scaling(sizes: list[int], accurate_sizes: list[int], fast_k: int) -> dict:
    from fhe_head.service.ray_engine import RayEngine
    from training.bench.ray_local import LoopbackCluster

    cores = os.cpu_count() or 1
    fast = Owner("fast", max(sizes), seed=1)
    accurate = Owner("accurate", max(accurate_sizes), seed=2) if accurate_sizes else None
    owners = {"fast": fast, "accurate": accurate}
    rows: list[dict] = []

    def embedded(point: str, ns: list[int], label: str) -> None:
        engine = LocalEngine({point: FHEServer(point)}, lambda _: owners[point].keys, workers=cores)
        try:
            for n in ns:
                rows.append(
                    {"engine": "embedded", "point": point, "cores": cores, "pass": label}
                    | run_identify(engine, point, owners[point], n)
                )
                print(rows[-1], flush=True)
        finally:
            engine.close()

    def on_ray(cluster, workers: int, point: str, ns: list[int], batched_point: str | None = None) -> None:
        name = batched_point or point
        engine = RayEngine(cluster.address, lambda _: owners[point].keys, points=(name,))
        try:
            assert engine.health()["workers"] == workers
            for n in ns:
                row = run_identify(engine, name, owners[point], n)
                rows.append(
                    {
                        "engine": f"ray_{workers}_worker",
                        "point": point,
                        "cores": workers,
                        "batched_k": fast_k if batched_point else 1,
                    }
                    | row
                )
                print(rows[-1], flush=True)
        finally:
            engine.close()

    with tempfile.TemporaryDirectory() as tmp, LoopbackCluster() as cluster:
        fast_batched = batched_copy("fast", fast_k, Path(tmp)) if fast_k > 1 else None
        embedded("fast", sizes, "first")
        cluster.start(workers=1)
        on_ray(cluster, 1, "fast", sizes)
        cluster.add_worker()
        on_ray(cluster, 2, "fast", sizes)
        if fast_batched:
            on_ray(cluster, 2, "fast", sizes, fast_batched)
        embedded("fast", sizes, "second")  # the machine's load drifts: embedded measured before and after
        if accurate:
            embedded("accurate", accurate_sizes, "first")
            on_ray(cluster, 2, "accurate", accurate_sizes)
    return {"rows": rows}


def summarise(rows: list[dict], sizes: list[int]) -> dict:
    def wall(engine: str, n: int, point: str = "fast", batched: int = 1) -> float | None:
        found = [
            r["wall_s"]
            for r in rows
            if r["engine"] == engine and r["n"] == n and r["point"] == point and r.get("batched_k", 1) == batched
        ]
        return statistics.median(found) if found else None

    overhead = {}
    for n in sizes:
        emb, ray2 = wall("embedded", n), wall("ray_2_worker", n)
        if emb and ray2:
            overhead[str(n)] = ray2 / emb - 1
    per_core = {
        f"{r['engine']}{'_batched' if r.get('batched_k', 1) > 1 else ''}_{r['point']}_n{r['n']}"
        f"{'_' + r['pass'] + '_pass' if 'pass' in r else ''}": r["wall_s"] * r["cores"] / r["n"]
        for r in rows
    }
    ray1 = [wall("ray_1_worker", n) for n in sizes]
    ray2 = [wall("ray_2_worker", n) for n in sizes]
    speedup = {str(n): a / b for n, a, b in zip(sizes, ray1, ray2, strict=True) if a and b}
    return {
        "ray_overhead_per_template_vs_embedded_equal_cores": overhead,
        "ray_overhead_goal": "<= 0.10 (Ray, 2 workers x 1 CPU, against the embedded pool on the same 2 cores)",
        "ray_2_over_1_worker_speedup": speedup,
        "per_core_s_per_template": per_core,
    }


def predict(rows: list[dict], summary: dict, workers: list[int], batch_ratio: float, batch_k: int) -> dict:
    """latency(N, W) ~= ceil(N / W) * c1 * r * (1 + o): c1 = one CPU's seconds per template (the 1-worker Ray
    run at the largest N), o = Ray's measured overhead (0 if negative), r = the batching ratio (1 unbatched)."""
    big = max(r["n"] for r in rows if r["engine"] == "ray_1_worker" and r["point"] == "fast")
    c1 = next(r["per_template_s"] for r in rows if r["engine"] == "ray_1_worker" and r["n"] == big)
    overheads = list(summary["ray_overhead_per_template_vs_embedded_equal_cores"].values())
    o = max(0.0, statistics.median(overheads)) if overheads else 0.0

    def table(ratio: float, k: int) -> dict:
        # a batch needs k templates per worker: with fewer, chunks fall back to one comparison per run
        return {
            str(w): {str(n): math.ceil(n / w) * c1 * (ratio if n >= w * k else 1.0) * (1 + o) for n in NS_PREDICTED}
            for w in workers
        }

    return {
        "label": "PREDICTION (not measured): no machine with more cores was available to this session",
        "formula": "latency(N, W) ~= ceil(N / W) * c1 * r * (1 + o); throughput ~= W / (c1 * r * (1 + o)) per s",
        "c1_s_per_template_one_cpu": c1,
        "o_ray_overhead": o,
        "r_batching_fast": batch_ratio,
        "k_batching_fast": batch_k,
        "latency_s_by_workers_and_n": table(1.0, 1),
        "latency_s_by_workers_and_n_batched_fast": table(batch_ratio, batch_k),
        "assumes": "one CPU per worker, workers on separate cores (no memory-bandwidth contention), "
        "templates >> workers; efficiency vs linear = 1 / (1 + o) for N a multiple of W",
    }


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in report["scaling"]["rows"] if r["point"] == "fast"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    series: dict[str, list[tuple[int, float, float]]] = {}
    for r in rows:
        label = r["engine"] + (f" batched K={r['batched_k']}" if r.get("batched_k", 1) > 1 else "")
        label += f" ({r['pass']} pass)" if "pass" in r else ""
        series.setdefault(label, []).append((r["n"], r["wall_s"], r["throughput_per_s"]))
    for label, points in series.items():
        points.sort()
        left.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=label)
        right.plot([p[0] for p in points], [p[2] for p in points], marker="o", label=label)
    pred = report["prediction"]["latency_s_by_workers_and_n"]
    for w, by_n in pred.items():
        ns = sorted(int(n) for n in by_n)
        left.plot(ns, [by_n[str(n)] for n in ns], linestyle=":", color="grey", alpha=0.6)
        left.annotate(f"{w} workers (predicted)", (ns[-1], by_n[str(ns[-1])]), fontsize=7, color="grey")
    left.set(
        xscale="log",
        yscale="log",
        xlabel="templates N",
        ylabel="identification latency (s)",
        title="fast head: measured (solid), predicted (dotted)",
    )
    right.set(xscale="log", xlabel="templates N", ylabel="templates per second", title="throughput (measured)")
    left.legend(fontsize=7)
    fig.suptitle(report["machine"] + ", shared with other jobs while measured: absolute times noisy", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[16, 64, 256])
    parser.add_argument("--accurate-sizes", type=int, nargs="*", default=[16])
    parser.add_argument("--batch-k-fast", type=int, nargs="+", default=[4, 8, 16])
    parser.add_argument("--batch-k-accurate", type=int, nargs="+", default=[2, 4])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument(
        "--part",
        choices=("all", "batching", "scaling", "none"),
        default="all",
        help="re-measure one part (none: only recompute summary, prediction and plot) from the existing JSON",
    )
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)

    old = json.loads(args.out.read_text()) if args.part != "all" and args.out.is_file() else {}
    load_before = os.getloadavg()
    if args.part in ("all", "batching"):
        batching = {
            "fast": measure_batching("fast", args.batch_k_fast, args.reps),
            "accurate": measure_batching("accurate", args.batch_k_accurate, args.reps),
        }
    else:
        batching = old["batching"]
    if args.part in ("all", "scaling"):
        scaling = measure_scaling(args.sizes, args.accurate_sizes, batching["fast"]["chosen_k"])
        scaling["command"] = "python -m training.bench.identify_scaling " + " ".join(sys.argv[1:])
    else:
        scaling = old["scaling"]
    sizes = sorted({r["n"] for r in scaling["rows"] if r["point"] == "fast"})
    summary = summarise(scaling["rows"], sizes)
    report = {
        "command": "python -m training.bench.identify_scaling",
        "machine": machine_label(machine_info()),
        "note": "real FHE, every decrypted bit checked against the clear integer model; designs measured side "
        "by side in one run; the load averages say whether other jobs shared the machine",
        "loadavg_before": old.get("loadavg_before") if args.part == "none" else [round(x, 2) for x in load_before],
        "loadavg_after": old.get("loadavg_after") if args.part == "none" else [round(x, 2) for x in os.getloadavg()],
        "batched_over_unbatched_ratio": {p: b["batched_over_unbatched_ratio"] for p, b in batching.items()},
        "batching": batching,
        "scaling": scaling,
        "summary": summary,
        "prediction": predict(
            scaling["rows"],
            summary,
            [1, 2, 4, 8],
            batching["fast"]["batched_over_unbatched_ratio"],
            batching["fast"]["chosen_k"],
        ),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    plot(report, args.out.with_suffix(".png"))
    print(json.dumps({"batched_over_unbatched_ratio": report["batched_over_unbatched_ratio"], **summary}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
