"""Developer side: compile a `HeadParams` into a TFHE circuit and write deployable artifacts.

Two builds of the same integer head, bit-exact, with the same PBS count, key set and p_error:
- Concrete-ML (`fhe_head.concrete_ml_head`, a Brevitas module; engine "concrete-ml"): what ships, by the
  project's rule that Concrete-ML ships when its server time is within 1.25x of the direct circuit's
  (measured: artifacts/metrics/head_engines.json);
- the direct concrete-python circuit (`build_function`, `compile_head`; engine "concrete-python"): the clear
  reference's twin, used for simulation and by the batched circuits (`compile_batched`).

Artifacts in `artifacts/fhe_head/<point>/` (`save_artifacts`; the same contract for both engines):
    server.zip         compiled circuit (no key material; tables and threshold are in it, in clear)
    client.specs.json  the circuit's key set and input/output encodings (keys, batching, format checks)
    client.zip         Concrete-ML engine only: FHEModelDev's client file (the input/output quantisers)
    head.json          client-side preprocessing (mean, projection, scales, n_bits) + the tables
    meta.json          engine, versions, circuit id, encoder hash, circuit statistics, p_error
    formats.json       the exact encodings of genuine ciphertexts and keys (`fhe_head.formats`)
"""

from __future__ import annotations

import hashlib
import inspect
import json
import shutil
from pathlib import Path

import numpy as np
from concrete import fhe
from concrete.fhe.version import __version__ as concrete_version

from fhe_head.artifacts import CONCRETE_ML, CONCRETE_PYTHON, ENGINES
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
    d, lo, hi = params.vector_length, params.q_min, params.q_max  # the level element included
    samples = [(np.full(d, lo), np.full(d, hi)), (np.full(d, hi), np.full(d, lo))]
    samples += [(rng.integers(lo, hi + 1, d), rng.integers(lo, hi + 1, d)) for _ in range(n)]
    return [(a.astype(np.int64), b.astype(np.int64)) for a, b in samples]


def configuration(**options) -> fhe.Configuration:
    """Every head circuit's settings: compressed keys and inputs, quiet; `options` add the error model."""
    return fhe.Configuration(
        compress_evaluation_keys=True,
        compress_input_ciphertexts=True,
        show_statistics=False,
        show_progress=False,
        **options,
    )


def compile_head(
    params: HeadParams,
    global_p_error: float = DEFAULT_GLOBAL_P_ERROR,
    exact_rounding: bool = True,
    strategy: fhe.ParameterSelectionStrategy = PARAMETER_STRATEGY,
):
    settings = configuration(global_p_error=global_p_error, parameter_selection_strategy=strategy)
    return build_function(params, exact_rounding).compile(inputset(params), configuration=settings)


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
        "parameter_selection_strategy": circuit.configuration.parameter_selection_strategy.value,
    }


def circuit_id(engine: str, specs: bytes, head_json: bytes) -> str:
    """What frames every ciphertext (`fhe_head.artifacts.wrap`): another circuit's material is refused by it.
    The direct engine's formula is the one its artifacts always had, so their ids do not change."""
    salt = b"" if engine == CONCRETE_PYTHON else engine.encode()
    return hashlib.sha256(salt + specs + head_json).hexdigest()[:16]


def compile_build(
    params: HeadParams,
    engine: str = CONCRETE_ML,
    global_p_error: float = DEFAULT_GLOBAL_P_ERROR,
    exact_rounding: bool = True,
    strategy: fhe.ParameterSelectionStrategy = PARAMETER_STRATEGY,
):
    """The head compiled by `engine`: a Concrete-ML QuantizedModule (its circuit is `.fhe_circuit`; exact rounding
    only) or the direct concrete-python circuit."""
    if engine == CONCRETE_ML:
        if not exact_rounding:
            raise ValueError("the Concrete-ML build rounds exactly only")
        from fhe_head.concrete_ml_head import compile_head as compile_concrete_ml

        return compile_concrete_ml(params, global_p_error, strategy)
    if engine == CONCRETE_PYTHON:
        return compile_head(params, global_p_error, exact_rounding, strategy)
    raise ValueError(f"unknown engine {engine!r} (known: {', '.join(ENGINES)})")


def _circuit(build):
    """The concrete circuit of a build of either engine."""
    return getattr(build, "fhe_circuit", build)


def save_artifacts(
    params: HeadParams,
    out_dir: Path,
    encoder_sha256: str,
    global_p_error: float = DEFAULT_GLOBAL_P_ERROR,
    exact_rounding: bool = True,
    extra_meta: dict | None = None,
    engine: str = CONCRETE_ML,
    compiled=None,
    strategy: fhe.ParameterSelectionStrategy = PARAMETER_STRATEGY,
) -> dict:
    """Compile `params` with `engine` and write its artifact folder atomically (a temp folder renamed at the end).

    `compiled`: a build of `params` already compiled with this engine and `global_p_error` (`compile_build`), to
    reuse instead of compiling again. Concrete-ML's build is exact only (`exact_rounding` must stay True).
    `strategy`: concrete's parameter selection (the shipped heads use one set, `PARAMETER_STRATEGY`).
    Returns meta.json's content.
    """
    if compiled is None:
        compiled = compile_build(params, engine, global_p_error, exact_rounding, strategy)
    circuit = _circuit(compiled)
    _check_inputs_interchangeable(circuit)
    out_dir = Path(out_dir)
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    extra: dict = {}
    if engine == CONCRETE_ML:
        from concrete.ml.deployment import FHEModelDev
        from concrete.ml.version import __version__ as concrete_ml_version

        FHEModelDev(str(tmp), compiled).save(via_mlir=False)  # server.zip and client.zip (quantisers, versions)
        extra = {"concrete_ml_version": concrete_ml_version}
    else:
        circuit.server.save(tmp / "server.zip", via_mlir=False)
    specs = circuit.client.specs.serialize()
    (tmp / "client.specs.json").write_bytes(specs)
    params.save(tmp / "head.json")
    meta = {
        "engine": engine,
        "point": params.name,
        "dims": params.dims,
        "vector_length": params.vector_length,
        "levels": list(params.levels),
        "level_thresholds": list(params.level_thresholds),
        "n_bits": params.n_bits,
        "lsbs": params.lsbs,
        "threshold": params.threshold,
        "max_sum": params.max_sum,
        "circuit_id": circuit_id(engine, specs, (tmp / "head.json").read_bytes()),
        "encoder_onnx_sha256": encoder_sha256,
        "concrete_python_version": concrete_version,
        **extra,
        **circuit_report(circuit, global_p_error, exact_rounding),
        **(extra_meta or {}),
    }
    (tmp / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    if out_dir.exists():
        shutil.rmtree(out_dir)
    tmp.rename(out_dir)
    # The service refuses inputs that are not in this circuit's exact encoding: record it now.
    from fhe_head.formats import record

    record(out_dir)
    return meta


def _check_inputs_interchangeable(circuit) -> None:
    """Refuse a circuit whose two inputs are encoded differently.

    A client encrypts every vector as input 0 (`FHEClient.encrypt`): a stored template and a later probe are then
    the same kind of ciphertext, and one exact format (formats.json) covers both. That holds only while both inputs
    have the same shape, encoding and key, which both engines give (Concrete-ML: one shared input quantiser).
    """
    inputs = _io_info(circuit.client.specs.serialize(), "inputs")
    if any(item != inputs[0] for item in inputs[1:]):
        raise RuntimeError("the circuit's inputs are encoded differently: templates and probes would not mix")


def _io_info(specs: bytes, which: str) -> list[dict]:
    """The `which` ("inputs" or "outputs") encodings of a client specs' one circuit."""
    program = json.loads(fhe.ClientSpecs.deserialize(specs).program_info.serialize())
    return program["circuits"][0][which]


# ---- batched identification: one run compares a probe with K templates ---------------------------------------
BATCH_SEARCH = [
    (1.0, fhe.ParameterSelectionStrategy.MONO),
    (1.005, fhe.ParameterSelectionStrategy.MONO),
    (1.02, fhe.ParameterSelectionStrategy.MULTI),
]


def build_batched_function(params: HeadParams, k: int, exact_rounding: bool = True, output_shape: tuple[int, ...] = ()):
    """K copies of the 1:1 comparison in one circuit: inputs t0..t{k-1}, probe; K encrypted bits out.

    Each output depends only on its own template and the probe through the same lookups, sum, rounding and
    comparison as `build_function`, so every answer has exactly the 1:1 circuit's error probability when the
    parameters are the same (see `compile_batched`). Inputs take whatever shape the inputset gives (the 1:1
    circuit's: (V,) direct, (1, V) Concrete-ML) and each answer has `output_shape` (() direct, (1, 1)
    Concrete-ML), so the 1:1 client's ciphertexts are accepted as they are and its decryption reads the answers.
    """
    if k < 1:
        raise ValueError("a batch holds at least one template")
    tables = fhe.LookupTable([fhe.LookupTable([int(v) for v in row]) for row in params.tables])
    offset, lsbs, threshold = params.offset, params.lsbs, params.threshold
    length = params.vector_length
    exactness = fhe.Exactness.EXACT if exact_rounding else fhe.Exactness.APPROXIMATE
    names = [f"t{i}" for i in range(k)]

    def compare(template, probe):
        delta = template - probe + offset
        if delta.shape != (length,):
            delta = delta.reshape(length)  # a (1, V) input: the per-element tables are laid out as (V,)
        total = np.sum(tables[delta])
        if lsbs:
            total = fhe.round_bit_pattern(total, lsbs_to_remove=lsbs, overflow_protection=True, exactness=exactness)
        same = total < threshold
        return same.reshape(output_shape) if output_shape else same

    def batch(**inputs):
        return tuple(compare(inputs[name], inputs["probe"]) for name in names)

    # concrete names a circuit's inputs after the traced function's signature: give `batch` k + 1 of them.
    kind = inspect.Parameter.KEYWORD_ONLY
    batch.__signature__ = inspect.Signature([inspect.Parameter(n, kind) for n in [*names, "probe"]])
    return fhe.compiler(dict.fromkeys([*names, "probe"], "encrypted"))(batch)


def _shape(info: dict) -> tuple[int, ...]:
    return tuple(info["typeInfo"]["lweCiphertext"]["abstractShape"]["dimensions"])


def compile_batched(params: HeadParams, client_specs: bytes, p_error: float, k: int, exact_rounding: bool = True):
    """The K-template circuit restricted to the 1:1 circuit's key set (same secret, bootstrap and keyswitch keys).

    The client keeps ONE key set per head: evaluation keys uploaded for the 1:1 circuit run this circuit
    unchanged, and its K outputs decrypt with the 1:1 client. `p_error` is the 1:1 circuit's per-bootstrap
    error (its meta.json), held per lookup rather than as a budget shared by the K answers; with the 1:1
    parameters (checked) each answer has exactly the 1:1 run's error probability. Written in concrete-python
    whichever engine built the 1:1 circuit (`client_specs`): its inputs and outputs take the 1:1 circuit's
    shapes and encodings (checked), so a Concrete-ML point's ciphertexts run here as they are.
    """
    specs = fhe.ClientSpecs.deserialize(client_specs)
    inputs, outputs = _io_info(client_specs, "inputs"), _io_info(client_specs, "outputs")
    input_shape = _shape(inputs[0])
    restriction = specs.program_info.get_keyset_info().get_restriction()
    samples = [(*[a.reshape(input_shape)] * k, b.reshape(input_shape)) for a, b in inputset(params)]
    function = build_batched_function(params, k, exact_rounding, _shape(outputs[0]))
    # concrete 2.10 does not always honour the keyset restriction (it picked neighbouring LWE dimensions),
    # and re-derives the 1:1 error with float rounding of its own: the first of these requests that lands
    # on exactly the 1:1 key set is kept, and anything else is refused below.
    for factor, strategy in BATCH_SEARCH:
        settings = configuration(
            p_error=p_error * factor,
            global_p_error=None,
            parameter_selection_strategy=strategy,
            keyset_restriction=restriction,
        )
        circuit = function.compile(samples, configuration=settings)
        if _keyset(circuit.client.specs.program_info) == _keyset(specs.program_info):
            break
    else:
        raise RuntimeError("no batched circuit with the 1:1 circuit's key set was found")
    if circuit.statistics["p_error"] > p_error * (1 + 1e-9):
        raise RuntimeError(f"per-bootstrap error {circuit.statistics['p_error']:.3g} above the 1:1 circuit's")
    batched = circuit.client.specs.serialize()
    if any(item != inputs[0] for item in _io_info(batched, "inputs")) or any(
        item != outputs[0] for item in _io_info(batched, "outputs")
    ):
        raise RuntimeError("the batched circuit encodes its inputs or outputs unlike the 1:1 circuit")
    return circuit


def _keyset(program_info) -> dict:
    return json.loads(program_info.serialize())["keyset"]


def save_batched(point: str | Path, sizes: list[int], exact_rounding: bool = True) -> dict:
    """Compile batched circuits for a shipped point and write them beside its `server.zip`.

    Nothing the client holds changes: same client specs, same key set, same ciphertexts. `batch.json` names
    the 1:1 circuit id they were built for; a server ignores batched circuits of another circuit id.
    """
    from fhe_head.artifacts import point_dir
    from fhe_head.server import BATCH_META, batch_server_name

    directory = point_dir(point)
    meta = json.loads((directory / "meta.json").read_text())
    params = HeadParams.load(directory / "head.json")
    specs = (directory / "client.specs.json").read_bytes()
    info: dict = {"circuit_id": meta["circuit_id"], "sizes": [], "circuits": {}}
    for k in sorted(set(sizes)):
        circuit = compile_batched(params, specs, meta["p_error"], k, exact_rounding)
        circuit.server.save(directory / batch_server_name(k), via_mlir=False)
        stats = circuit.statistics
        info["sizes"].append(k)
        info["circuits"][str(k)] = {
            "programmable_bootstrap_count": int(stats["programmable_bootstrap_count"]),
            "complexity": float(stats["complexity"]),
            "p_error_per_bootstrap": float(stats["p_error"]),
            # every answer depends on its own bootstraps only: its error is the 1:1 circuit's
            "p_error_per_answer": meta["global_p_error"],
            "p_error_any_of_k_answers": float(stats["global_p_error"]),
        }
    (directory / BATCH_META).write_text(json.dumps(info, indent=2) + "\n")
    return info


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description="Developer builds of the FHE head.")
    sub = parser.add_subparsers(dest="command", required=True)
    batch = sub.add_parser("batch", help="compile batched identification circuits beside a point's server.zip")
    batch.add_argument("--point", default="fast")
    batch.add_argument("--k", type=int, nargs="+", required=True, help="templates per run, e.g. 16")
    args = parser.parse_args(argv)
    print(json.dumps(save_batched(args.point, args.k), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
