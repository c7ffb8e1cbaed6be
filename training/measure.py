"""Cost of one compiled head: server time, key generation, key and ciphertext sizes, Concrete's report."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import numpy as np

from fhe_head.circuit import DEFAULT_GLOBAL_P_ERROR, circuit_report, compile_head
from fhe_head.head import HeadParams

T = TypeVar("T")


def median_seconds(fn: Callable[[], T], runs: int) -> tuple[float, T]:
    """Median wall time of `runs` calls of `fn`, and the last call's result."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times)), out


def measure_circuit(params: HeadParams, runs: int) -> dict:
    """Server time (median of `runs`), key and ciphertext sizes of one compiled head."""
    from concrete import fhe

    circuit = compile_head(params)
    client = fhe.Client(circuit.client.specs)
    start = time.perf_counter()
    client.keys.generate()
    keygen_s = time.perf_counter() - start
    server = circuit.server  # the same compiled server a deployment loads from server.zip
    qa = np.zeros(params.dims, np.int64)
    a, _ = client.encrypt(qa, None)
    _, b = client.encrypt(None, qa)
    evaluation_keys = client.evaluation_keys
    run_s, result = median_seconds(lambda: server.run(a, b, evaluation_keys=evaluation_keys), runs)
    return {
        "server_run_s_median": run_s,
        "server_runs": runs,
        "keygen_s": keygen_s,
        "eval_keys_mb": len(evaluation_keys.serialize()) / 1e6,
        "ciphertext_kb": len(a.serialize()) / 1e3,
        "result_kb": len(result.serialize()) / 1e3,
        "decrypts_to": int(client.decrypt(result)),
        **circuit_report(circuit, DEFAULT_GLOBAL_P_ERROR, True),
    }
