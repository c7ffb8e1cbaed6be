"""The build step: compile a `HeadParams` into a TFHE circuit and write deployable artifacts; learn their input
formats; compile batched circuits. `python -m fhe_head.build batch|formats ...`. Nothing at runtime imports it.

Two builds of the same integer head, bit-exact, with the same PBS count, key set and p_error:
- Concrete-ML (`fhe_head.concrete_ml_head`, a Brevitas module; engine "concrete-ml"): what ships, by the
  project's rule that Concrete-ML ships when its server time is within 1.25x of the direct circuit's
  (measured: artifacts/metrics/head_engines.json);
- the direct concrete-python circuit (`fhe_head.circuit`; engine "concrete-python"): the clear
  reference's twin, used for simulation and by the batched circuits (`compile_batched`).

Artifacts in `artifacts/fhe_head/<point>/` (`save_artifacts`; the same contract for both engines):
    server.zip         compiled circuit (no key material; tables and threshold are in it, in clear)
    client.specs.json  the circuit's key set and input/output encodings (keys, batching, format checks)
    client.zip         Concrete-ML engine only: FHEModelDev's client file (the input/output quantisers)
    head.json          client-side preprocessing (mean, projection, scales, n_bits) + the tables
    meta.json          engine, versions, circuit id, encoder hash, circuit statistics, p_error
    formats.json       the exact encodings of genuine ciphertexts and keys (learnt here: `record_formats`;
                       read by `fhe_head.formats`)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
from concrete import fhe
from concrete.fhe.version import __version__ as concrete_version

from fhe_head.artifacts import (
    BATCH_META,
    CLIENT_SPECS_FILE,
    CONCRETE_ML,
    CONCRETE_PYTHON,
    ENGINES,
    FORMATS_FILE,
    HEAD_FILE,
    META_FILE,
    SERVER_FILE,
    load_meta,
    point_dir,
)
from fhe_head.circuit import (
    DEFAULT_GLOBAL_P_ERROR,
    PARAMETER_STRATEGY,
    circuit_report,
    compile_batched,
    compile_head,
    io_info,
)
from fhe_head.client import FHEClient
from fhe_head.concrete_ml_head import compile_head as compile_concrete_ml
from fhe_head.formats import ExactFormat
from fhe_head.head import HeadParams
from fhe_head.server import batch_server_name


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
    encoder: str = "dlib",
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
        circuit.server.save(tmp / SERVER_FILE, via_mlir=False)
    specs = circuit.client.specs.serialize()
    (tmp / CLIENT_SPECS_FILE).write_bytes(specs)
    params.save(tmp / HEAD_FILE)
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
        "circuit_id": circuit_id(engine, specs, (tmp / HEAD_FILE).read_bytes()),
        "encoder": encoder,
        "encoder_onnx_sha256": encoder_sha256,
        "concrete_python_version": concrete_version,
        **extra,
        **circuit_report(circuit, global_p_error, exact_rounding),
        **(extra_meta or {}),
    }
    (tmp / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    if out_dir.exists():
        shutil.rmtree(out_dir)
    tmp.rename(out_dir)
    # The service refuses inputs that are not in this circuit's exact encoding: record it now.
    record_formats(out_dir)
    return meta


def _check_inputs_interchangeable(circuit) -> None:
    """Refuse a circuit whose two inputs are encoded differently.

    A client encrypts every vector as input 0 (`FHEClient.encrypt`): a stored template and a later probe are then
    the same kind of ciphertext, and one exact format (formats.json) covers both. That holds only while both inputs
    have the same shape, encoding and key, which both engines give (Concrete-ML: one shared input quantiser).
    """
    inputs = io_info(circuit.client.specs.serialize(), "inputs")
    if any(item != inputs[0] for item in inputs[1:]):
        raise RuntimeError("the circuit's inputs are encoded differently: templates and probes would not mix")


def save_batched(point: str | Path, sizes: list[int], exact_rounding: bool = True) -> dict:
    """Compile batched circuits for a shipped point and write them beside its `server.zip`.

    Nothing the client holds changes: same client specs, same key set, same ciphertexts. `batch.json` names
    the 1:1 circuit id they were built for; a server ignores batched circuits of another circuit id.
    """
    directory = point_dir(point)
    meta = json.loads((directory / META_FILE).read_text())
    params = HeadParams.load(directory / HEAD_FILE)
    specs = (directory / CLIENT_SPECS_FILE).read_bytes()
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


# ---- exact input formats: learnt from genuine encryptions under throw-away keys ---------------------------------
def learn_formats(point: str | Path, key_sets: int = 2, encryptions: int = 3) -> dict:
    """Genuine samples from throw-away key sets (build side only: it generates secret keys)."""
    rng = np.random.default_rng(0)
    ciphertexts, keys = [], []
    meta: dict = {}
    for _ in range(key_sets):
        client = FHEClient(point)
        client.generate_keys()
        meta = client.meta
        keys.append(client.evaluation_keys())
        dims = client.head.mean.shape[0]
        ciphertexts += [client.encrypt(rng.normal(size=dims).astype(np.float32) * 3) for _ in range(encryptions)]
    return {
        "circuit_id": meta["circuit_id"],
        "ciphertext": ExactFormat.learn(ciphertexts).to_json(),
        "evaluation_keys": ExactFormat.learn(keys).to_json(),
    }


def record_formats(point: str | Path) -> dict:
    """Learn a compiled point's exact input encodings and write them beside its artifacts (`fhe_head.formats`)."""
    directory = point_dir(point)
    load_meta(directory, (CLIENT_SPECS_FILE,))
    formats = learn_formats(str(directory))
    (directory / FORMATS_FILE).write_text(json.dumps(formats, indent=1) + "\n")
    return formats


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build steps of the FHE head (after a head is compiled).")
    sub = parser.add_subparsers(dest="command", required=True)
    batch = sub.add_parser("batch", help="compile batched identification circuits beside a point's server.zip")
    batch.add_argument("--point", default="fast")
    batch.add_argument("--k", type=int, nargs="+", required=True, help="templates per run, e.g. 16")
    formats = sub.add_parser("formats", help="record the exact input encodings of compiled head points")
    formats.add_argument("points", nargs="+", help="point names or artifact folders")
    args = parser.parse_args(argv)
    if args.command == "batch":
        print(json.dumps(save_batched(args.point, args.k), indent=2))
        return 0
    for point in args.points:
        recorded = record_formats(point)
        print(
            f"{point_dir(point) / FORMATS_FILE}: ciphertext {recorded['ciphertext']['length']} B, "
            f"evaluation keys {recorded['evaluation_keys']['length']} B"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
