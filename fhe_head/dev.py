"""Developer side: compile a `HeadParams` into a TFHE circuit and write deployable artifacts.

Why concrete-python rather than Concrete-ML's `compile_brevitas_qat_model`: the head needs one
*different* learned table per dimension, an integer sum rounded before an in-circuit threshold,
and inputs quantised per dimension on the client. Concrete-ML re-quantises each input with a
lookup before the subtraction (9-bit differences, 4 GiB bootstrap keys for d = 8 when we tried)
and cannot hold per-dimension tables; concrete-python (the compiler Concrete-ML itself uses)
expresses the circuit exactly, so FHE, simulation and the clear integer model agree.

Artifacts in `artifacts/fhe_head/<point>/`:
    server.zip         compiled circuit (no key material; tables and threshold are in it, in clear)
    client.specs.json  what a client needs to generate keys and encrypt/decrypt
    head.json          client-side preprocessing (mean, projection, scales, n_bits) + the tables
    meta.json          versions, encoder hash, circuit statistics, p_error
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
from concrete import fhe
from concrete.fhe.version import __version__ as concrete_version

from fhe_head.head import HeadParams

# Error probability of one circuit run (one answer); a smaller one costs run time (README, FHE head).
DEFAULT_GLOBAL_P_ERROR = 1e-5
# One parameter set for the whole circuit: a second bootstrap key for the small lookups saves a few
# percent of run time for much larger evaluation keys (figures in the README, FHE head section).
PARAMETER_STRATEGY = fhe.ParameterSelectionStrategy.MONO


def build_function(params: HeadParams, exact_rounding: bool = True):
    tables = fhe.LookupTable([fhe.LookupTable([int(v) for v in row]) for row in params.tables])
    offset, lsbs, threshold = params.offset, params.lsbs, params.threshold
    exactness = fhe.Exactness.EXACT if exact_rounding else fhe.Exactness.APPROXIMATE

    def head(a, b):
        total = np.sum(tables[a - b + offset])
        if lsbs:
            total = fhe.round_bit_pattern(total, lsbs_to_remove=lsbs, overflow_protection=True, exactness=exactness)
        return total < threshold

    return fhe.compiler({"a": "encrypted", "b": "encrypted"})(head)


def inputset(params: HeadParams, n: int = 64, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """Covers the full input range (corners included) so every difference is in bounds."""
    rng = np.random.default_rng(seed)
    d, lo, hi = params.dims, params.q_min, params.q_max
    samples = [(np.full(d, lo), np.full(d, hi)), (np.full(d, hi), np.full(d, lo))]
    samples += [(rng.integers(lo, hi + 1, d), rng.integers(lo, hi + 1, d)) for _ in range(n)]
    return [(a.astype(np.int64), b.astype(np.int64)) for a, b in samples]


def compile_head(params: HeadParams, global_p_error: float = DEFAULT_GLOBAL_P_ERROR, exact_rounding: bool = True):
    configuration = fhe.Configuration(
        global_p_error=global_p_error,
        parameter_selection_strategy=PARAMETER_STRATEGY,
        compress_evaluation_keys=True,
        compress_input_ciphertexts=True,
        show_statistics=False,
        show_progress=False,
    )
    return build_function(params, exact_rounding).compile(inputset(params), configuration=configuration)


def circuit_report(circuit, global_p_error: float, exact_rounding: bool) -> dict:
    stats = circuit.statistics
    program = json.loads(circuit.client.specs.program_info.serialize())
    bootstrap = program["keyset"]["lweBootstrapKeys"]
    return {
        "max_bit_width": int(circuit.graph.maximum_integer_bit_width()),
        "programmable_bootstrap_count": int(stats["programmable_bootstrap_count"]),
        "polynomial_sizes": sorted({int(k["params"]["polynomialSize"]) for k in bootstrap}),
        "glwe_dimensions": sorted({int(k["params"]["glweDimension"]) for k in bootstrap}),
        "complexity": float(stats["complexity"]),
        "global_p_error_requested": global_p_error,
        "global_p_error": float(stats["global_p_error"]),
        "p_error": float(stats["p_error"]),
        "rounding": "exact" if exact_rounding else "approximate",
        "parameter_selection_strategy": PARAMETER_STRATEGY.value,
    }


def save_artifacts(
    params: HeadParams,
    out_dir: Path,
    encoder_sha256: str,
    global_p_error: float = DEFAULT_GLOBAL_P_ERROR,
    exact_rounding: bool = True,
    extra_meta: dict | None = None,
) -> dict:
    """Compile and write the artifact folder atomically (a temp folder renamed at the end)."""
    circuit = compile_head(params, global_p_error, exact_rounding)
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    circuit.server.save(tmp / "server.zip", via_mlir=False)
    specs = circuit.client.specs.serialize()
    (tmp / "client.specs.json").write_bytes(specs)
    params.save(tmp / "head.json")
    meta = {
        "point": params.name,
        "dims": params.dims,
        "n_bits": params.n_bits,
        "lsbs": params.lsbs,
        "threshold": params.threshold,
        "max_sum": params.max_sum,
        "circuit_id": hashlib.sha256(specs + (tmp / "head.json").read_bytes()).hexdigest()[:16],
        "encoder_onnx_sha256": encoder_sha256,
        "concrete_python_version": concrete_version,
        **circuit_report(circuit, global_p_error, exact_rounding),
        **(extra_meta or {}),
    }
    (tmp / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    if out_dir.exists():
        shutil.rmtree(out_dir)
    tmp.rename(out_dir)
    return meta
