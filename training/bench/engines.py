"""The same integer head compiled two ways, side by side in one process: the direct concrete-python circuit
(`fhe_head.circuit`) and the Concrete-ML build (`fhe_head.concrete_ml_head`, the shipped one since this rule held).

    python -m training.bench.engines [--points accurate fast] [--runs 5]

Per point: PBS count, max bit width, concrete's complexity, compile time, server run time (median of `runs`
real-FHE runs, each on two different ciphertexts), evaluation key and ciphertext sizes, and whether every real
FHE answer equals `HeadParams.decide`; Concrete-ML's simulation against it on random pairs and on pairs at the
decision boundary. Writes artifacts/metrics/head_engines.json. Each point runs in a child
process watched for the limits below: a Concrete-ML compile that needs more is stopped and recorded as such.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import queue
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from fhe_head.artifacts import ARTIFACTS_ROOT, HEAD_FILE
from fhe_head.head import HeadParams
from training.machine import machine_info, rss_bytes
from training.paths import METRICS

OUTPUT = METRICS / "head_engines.json"
SHIP_RULE = "the Concrete-ML build ships if its server time is within 1.25x of the direct circuit's"
SHIP_RATIO = 1.25
# A Concrete-ML compile that needs more than this is stopped and recorded (memory: the point's whole process).
COMPILE_LIMIT_S = 600
MEMORY_LIMIT_GB = 10.0


def boundary_pairs(params: HeadParams, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """About `n` pairs whose raw sum sits next to the decision boundary, on both sides: where the rounding
    decides, so where two builds that round differently would disagree.

    From a random template, the probe walks away one step at a time while the sum stays at or below the raw cut
    (`threshold - 2**(lsbs-1)`); the last probe below and the first step past it are both kept.
    """
    rng = np.random.default_rng(seed)
    cut = int(params.threshold - ((1 << params.lsbs) >> 1))
    left, right = [], []
    while len(left) < n:
        a = rng.integers(params.q_min, params.q_max + 1, params.vector_length)
        b = a.copy()
        if params.levels:
            a[-1], b[-1] = 0, rng.integers(0, len(params.levels))
        crossed = None
        for _ in range(4 * params.dims * params.offset):
            step = b.copy()
            i = rng.integers(0, params.dims)
            step[i] = np.clip(step[i] + rng.choice([-1, 1]), params.q_min, params.q_max)
            if params.score(a, step) < cut:
                b = step
            elif params.score(a, b) < cut:
                crossed = step
                break
        left += [a, a] if crossed is not None else [a]
        right += [b, crossed] if crossed is not None else [b]
    return np.stack(left), np.stack(right)


def simulated_exactness(params: HeadParams, quantized, n: int, seed: int = 1) -> dict:
    """Concrete-ML's simulation of the build against `params.decide` on `n` random and ~`n` boundary pairs."""
    rng = np.random.default_rng(seed)
    random = [rng.integers(params.q_min, params.q_max + 1, (n, params.vector_length)) for _ in range(2)]
    near = boundary_pairs(params, n, seed)
    out = {}
    for name, (a, b) in (("random", random), ("boundary", near)):
        simulated = quantized.forward(a.astype(np.float64), b.astype(np.float64), fhe="simulate").ravel()
        expected = params.decide(a, b)
        out[name] = {"pairs": len(a), "mismatches": int(np.sum(simulated != expected)), "same": int(expected.sum())}
    distance = params.score(*near) - int(params.threshold - ((1 << params.lsbs) >> 1))
    out["boundary"]["raw_sum_minus_cut"] = {"min": int(distance.min()), "max": int(distance.max())}
    out["boundary"]["within_one_rounding_step"] = int(np.sum(np.abs(distance) <= 1 << params.lsbs))
    return out


def _pairs(params: HeadParams, runs: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """`runs` pairs of different vectors (a ciphertext against itself bootstraps almost for free)."""
    rng = np.random.default_rng(seed)
    out = []
    while len(out) < runs:
        a, b = (rng.integers(params.q_min, params.q_max + 1, params.vector_length) for _ in range(2))
        if params.levels:
            a[-1], b[-1] = 0, rng.integers(0, len(params.levels))
        if not np.array_equal(a, b):
            out.append((a, b))
    return out


class _Direct:
    """The direct circuit, through the same compiled client/server objects a deployment loads."""

    name = "direct"

    def __init__(self, params: HeadParams) -> None:
        from concrete import fhe

        from fhe_head.circuit import DEFAULT_GLOBAL_P_ERROR, circuit_report, compile_head

        start = time.perf_counter()
        self.circuit = compile_head(params)
        self.compile_s = time.perf_counter() - start
        self.report = circuit_report(self.circuit, DEFAULT_GLOBAL_P_ERROR, True)
        self.client = fhe.Client(self.circuit.client.specs)
        self.client.keys.generate()
        self.keys = self.client.evaluation_keys
        self.eval_keys_bytes = len(self.keys.serialize())

    def run(self, a: np.ndarray, b: np.ndarray) -> tuple[float, int, int, int]:
        """(server seconds, decrypted bit, input and output ciphertext bytes) for one pair."""
        template, _ = self.client.encrypt(a, None)
        _, probe = self.client.encrypt(None, b)
        start = time.perf_counter()
        result = self.circuit.server.run(template, probe, evaluation_keys=self.keys)
        seconds = time.perf_counter() - start
        return seconds, int(self.client.decrypt(result)), len(template.serialize()), len(result.serialize())


class _ConcreteML:
    """The Concrete-ML build, deployed as it ships: `fhe_head.build.save_artifacts` (FHEModelDev inside), then the
    project's FHEClient / FHEServer (FHEModelClient / FHEModelServer inside)."""

    name = "concrete_ml"

    def __init__(self, params: HeadParams, directory: Path) -> None:
        from fhe_head.artifacts import CONCRETE_ML, circuit_tag
        from fhe_head.build import save_artifacts
        from fhe_head.client import FHEClient
        from fhe_head.concrete_ml_head import compile_head
        from fhe_head.server import FHEServer

        start = time.perf_counter()
        self.quantized = compile_head(params)
        self.compile_s = time.perf_counter() - start
        meta = save_artifacts(params, directory, "0" * 64, engine=CONCRETE_ML, compiled=self.quantized)
        skip = {"point", "dims", "vector_length", "levels", "level_thresholds", "max_sum", "circuit_id", "n_bits"}
        skip |= {"lsbs", "threshold", "encoder_onnx_sha256"}
        self.report = {k: v for k, v in meta.items() if k not in skip}
        self.client, self.server = FHEClient(directory), FHEServer(directory)
        self.client.generate_keys()
        self.tag = len(circuit_tag(meta))  # the project's framing, left out of the sizes (as for the direct one)
        serialized = self.client.evaluation_keys()
        self.keys = self.server.load_evaluation_keys(serialized)
        self.eval_keys_bytes = len(serialized) - self.tag

    def run(self, a: np.ndarray, b: np.ndarray) -> tuple[float, int, int, int]:
        template, probe = self.client.encrypt_vector(a), self.client.encrypt_vector(b)
        result = self.server.run(template, probe, self.keys)
        bit = int(self.client.decrypt(result))
        return self.server.last_run_s, bit, len(template) - self.tag, len(result) - self.tag


def compare_engines(params: HeadParams, runs: int, simulated: int = 500, progress=None) -> dict:
    """Both builds of `params` side by side in this process: costs, sizes, real-FHE agreement, the ship rule.

    One untimed warm-up run each (a circuit's first run pays one-off loading costs), then the `runs` pairs run
    alternately on the two builds, so load from other processes weighs on both alike. `simulated`: random
    and boundary pairs on which Concrete-ML's simulation is checked against `params.decide`.
    """
    pairs = _pairs(params, runs + 1)
    with tempfile.TemporaryDirectory() as tmp:
        concrete_ml = _ConcreteML(params, Path(tmp) / "concrete_ml")
        if progress:
            progress("compiled")
        exactness = simulated_exactness(params, concrete_ml.quantized, simulated) if simulated else None
        engines = (_Direct(params), concrete_ml)
        results: dict = {}
        for engine in engines:
            warm_up_s = engine.run(*pairs[0])[0]
            results[engine.name] = {"times": [], "agree": 0, "warm_up_run_s": warm_up_s}
        for a, b in pairs[1:]:
            for engine in engines:
                seconds, bit, size_in, size_out = engine.run(a, b)
                entry = results[engine.name]
                entry["times"].append(seconds)
                entry["agree"] += int(bit == int(params.decide(a, b)))
                entry["sizes"] = (size_in, size_out)
        out = {}
        for engine in engines:
            entry = results[engine.name]
            out[engine.name] = {
                "compile_s": engine.compile_s,
                "server_run_s_median": float(np.median(entry["times"])),
                "server_run_s": entry["times"],
                "warm_up_run_s": entry["warm_up_run_s"],
                "eval_keys_mb": engine.eval_keys_bytes / 1e6,
                "ciphertext_in_kb": entry["sizes"][0] / 1e3,
                "ciphertext_out_kb": entry["sizes"][1] / 1e3,
                "fhe_equals_integer_model": f"{entry['agree']}/{runs}",
                **engine.report,
            }
    ratio = out["concrete_ml"]["server_run_s_median"] / out["direct"]["server_run_s_median"]
    return {
        "head": params.name,
        "dims": params.dims,
        "vector_length": params.vector_length,
        "lsbs": params.lsbs,
        "runs": runs,
        **out,
        "server_time_ratio_concrete_ml_over_direct": ratio,
        "complexity_ratio_concrete_ml_over_direct": out["concrete_ml"]["complexity"] / out["direct"]["complexity"],
        "concrete_ml_ships": bool(ratio <= SHIP_RATIO),
        "concrete_ml_simulation_vs_integer_model": exactness,
    }


def head_file(point: str) -> Path:
    """A shipped point's head.json, or any head.json given by path (e.g. a trained head that is not shipped)."""
    path = Path(point)
    return path if path.suffix == ".json" and path.is_file() else ARTIFACTS_ROOT / point / HEAD_FILE


def _child(point: str, runs: int, simulated: int, messages) -> None:
    """One point in a child process: progress and the result (or the error) go back through `messages`."""
    try:
        params = HeadParams.load(head_file(point))
        result = compare_engines(params, runs, simulated, progress=lambda what: messages.put((what, None)))
        messages.put(("done", result))
    except Exception as err:  # reported in the JSON, not lost in a child's stderr
        messages.put(("error", f"{type(err).__name__}: {err}"))


def run_point(point: str, runs: int, simulated: int = 500) -> dict:
    """`compare_engines` on a shipped point in a watched child: stopped past MEMORY_LIMIT_GB at any time, or
    past COMPILE_LIMIT_S before the Concrete-ML build has compiled."""
    context = multiprocessing.get_context("spawn")
    messages = context.Queue()
    child = context.Process(target=_child, args=(point, runs, simulated, messages))
    start = time.perf_counter()
    child.start()
    compiled_at, peak, outcome = None, 0.0, None
    while outcome is None:
        try:
            what, value = messages.get(timeout=1.0)
            if what == "compiled":
                compiled_at = time.perf_counter() - start
            else:
                outcome = {"error": value} if what == "error" else value
        except queue.Empty:
            peak = max(peak, rss_bytes(child.pid) / 1e9)
            elapsed = time.perf_counter() - start
            if peak > MEMORY_LIMIT_GB or (compiled_at is None and elapsed > COMPILE_LIMIT_S):
                child.kill()
                why = f"> {MEMORY_LIMIT_GB} GB" if peak > MEMORY_LIMIT_GB else f"> {COMPILE_LIMIT_S} s"
                outcome = {"stopped": f"Concrete-ML build stopped ({why}) after {elapsed:.0f} s at {peak:.1f} GB RSS"}
            elif not child.is_alive() and messages.empty():
                outcome = {"error": f"child exited with status {child.exitcode}"}
    child.join(timeout=30)
    return {**outcome, "point": point, "peak_rss_gb_sampled": round(peak, 2), "wall_s": time.perf_counter() - start}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", nargs="+", default=["fast", "accurate"], help="shipped points or head.json paths")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--simulated", type=int, default=500, help="random and boundary pairs simulated per point")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)
    from concrete.fhe.version import __version__ as concrete_version
    from concrete.ml.version import __version__ as concrete_ml_version

    report = {
        "rule": SHIP_RULE,
        "machine": machine_info(),
        "concrete_python": concrete_version,
        "concrete_ml": concrete_ml_version,
        "limits": {"compile_s": COMPILE_LIMIT_S, "memory_gb": MEMORY_LIMIT_GB},
        "points": {},
    }
    for point in args.points:
        report["points"][point] = run_point(point, args.runs, args.simulated)
        print(json.dumps({point: report["points"][point]}, indent=2, default=str), file=sys.stderr)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
