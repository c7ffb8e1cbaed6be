"""The head as a direct concrete-python circuit: its function, inputset and compile settings (shared with the
Concrete-ML build, `fhe_head.concrete_ml_head`), its statistics, and the batched circuits (one probe against K
templates under the 1:1 circuit's key set). Build-time code: the runtime roles only load what `fhe_head.build`
wrote.
"""

from __future__ import annotations

import inspect
import json

import numpy as np
from concrete import fhe

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


def io_info(specs: bytes, which: str) -> list[dict]:
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
    inputs, outputs = io_info(client_specs, "inputs"), io_info(client_specs, "outputs")
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
    if any(item != inputs[0] for item in io_info(batched, "inputs")) or any(
        item != outputs[0] for item in io_info(batched, "outputs")
    ):
        raise RuntimeError("the batched circuit encodes its inputs or outputs unlike the 1:1 circuit")
    return circuit


def _keyset(program_info) -> dict:
    return json.loads(program_info.serialize())["keyset"]
