"""Server role: run the compiled head on two ciphertexts with the client's evaluation keys.

One role whatever built the circuit (meta.json's "engine"): a Concrete-ML point runs through Concrete-ML's
`FHEModelServer`, a concrete-python point through concrete's `Server`; framing, parsing of ciphertexts and
keys, errors and batching are the same for both.

Holds no secret key and imports nothing that can decrypt (no `fhe.Client`, no key files):
its inputs are ciphertexts and evaluation keys, its output one encrypted bit per comparison.
(`FHEModelServer` loads only server.zip; it makes a client object only for TFHE-rs interoperable circuits,
which the head is not.)

Batched circuits (`fhe_head.build.save_batched`): `server.batch<K>.zip` beside `server.zip` compares one probe
with K templates per run under the 1:1 circuit's key set and per-answer error; `run_many` uses them.
"""

from __future__ import annotations

import atexit
import json
import logging
import signal
import time
from collections.abc import Callable
from functools import cached_property
from pathlib import Path

from fhe_head.artifacts import (
    BATCH_META,
    CONCRETE_ML,
    DEFAULT_POINT,
    SERVER_FILE,
    concrete_ml_deployment,
    engine_of,
    key_parameters,
    load_meta,
    point_dir,
    unwrap,
    wrap,
)
from privface_core import signals
from privface_core.errors import ArtifactError, CiphertextError, EvaluationKeyError

with signals.kept():  # concrete's compiler library installs its own SIGINT/SIGTERM/SIGQUIT handlers when loaded
    from concrete.fhe.compilation.evaluation_keys import EvaluationKeys
    from concrete.fhe.compilation.server import Server
    from concrete.fhe.compilation.value import Value

RunPair = Callable[[Value, Value, EvaluationKeys], Value]
log = logging.getLogger(__name__)


def start_runtime() -> None:
    """Start concrete's runtime now, keeping the process's own signal handlers.

    The runtime (HPX) installs its own signal handlers when it starts: SIGPIPE's terminates the process (a
    server writing an answer to a client that has already closed its connection gets SIGPIPE: Python ignores
    it, the write fails with an error instead), SIGINT's and SIGTERM's skip the server's shutdown. Started
    here, once, so no run starts it later behind our back."""
    import concrete.compiler

    with signals.kept((*signals.INTERRUPT_SIGNALS, *((signal.SIGPIPE,) if hasattr(signal, "SIGPIPE") else ()))):
        concrete.compiler.init_dfr()
    # Its finalizer, registered with atexit by concrete, ends the process with status 0 whatever the
    # program returned (a server refusing to start, a failed evaluation, all exited 0). The OS reclaims
    # the runtime's threads at exit anyway.
    atexit.unregister(getattr(concrete.compiler, "_terminate_df_parallelization", lambda: None))


def key_set_bytes(keyset: dict) -> int:
    """The memory one parsed evaluation-key set of a circuit holds, from its key parameters (the client specs'
    "keyset"), as concrete's runtime holds it: every bootstrapping key as read (seed-compressed: one polynomial
    per GLWE ciphertext) and in the Fourier domain it runs with (complex, all of them), every keyswitching key
    with its masks regenerated. Checked against a server process's RSS: training/bench/key_memory.py."""
    total = 0
    for key in keyset["lweBootstrapKeys"]:
        p = key["params"]
        ciphertexts = p["inputLweDimension"] * p["levelCount"] * (p["glweDimension"] + 1)
        total += ciphertexts * p["polynomialSize"] * 8  # as read
        total += ciphertexts * (p["glweDimension"] + 1) * p["polynomialSize"] // 2 * 16  # Fourier domain
    for key in keyset["lweKeyswitchKeys"]:
        p = key["params"]
        total += p["inputLweDimension"] * p["levelCount"] * (p["outputLweDimension"] + 1) * 8
    if keyset.get("packingKeyswitchKeys"):
        raise ArtifactError("a circuit with packing keyswitching keys: their memory is not modelled here")
    return total


def batch_server_name(k: int) -> str:
    return f"server.batch{k}.zip"


class FHEServer:
    """Loads `server.zip` of a head point (and its batched circuits, if built) and evaluates them."""

    def __init__(self, point: str | Path = DEFAULT_POINT, batched: bool = True) -> None:
        self.directory = point_dir(point)
        self.meta = load_meta(self.directory, (SERVER_FILE,))
        self.engine = engine_of(self.meta)
        start_runtime()
        self._run_pair = self._load_circuit()
        self._batches: dict[int, Server] = {}
        if batched:
            self._load_batches()
        self.last_run_s: float | None = None
        log.info("%s head loaded", self.directory.name)

    def _load_circuit(self) -> RunPair:
        """The 1:1 circuit of this point's engine, as one function of (template, probe, keys)."""
        if self.engine == CONCRETE_ML:
            try:
                model = concrete_ml_deployment().FHEModelServer(str(self.directory))
            except ValueError as err:  # its own check of versions.json against the installed packages
                raise ArtifactError(f"{self.directory}: {err}") from err
            return lambda a, b, keys: model.run((a, b), keys)
        server = Server.load(self.directory / SERVER_FILE)
        return lambda a, b, keys: server.run(a, b, evaluation_keys=keys)

    def _load_batches(self) -> None:
        """Batched circuits built for exactly this 1:1 circuit (same circuit id); stale ones are ignored."""
        path = self.directory / BATCH_META
        if not path.is_file():
            return
        info = json.loads(path.read_text())
        if info.get("circuit_id") != self.meta["circuit_id"]:
            return
        for k in info.get("sizes", []):
            if (self.directory / batch_server_name(int(k))).is_file():
                self._batches[int(k)] = Server.load(self.directory / batch_server_name(int(k)))

    def add_batch(self, k: int, server: Server) -> None:
        """Use a batched circuit compiled in this process (benchmarks); `fhe_head.circuit.compile_batched`."""
        self._batches[k] = server

    @property
    def batch_sizes(self) -> list[int]:
        return sorted(self._batches, reverse=True)

    @cached_property
    def key_set_bytes(self) -> int:
        """The memory one parsed set of this circuit's evaluation keys holds (`key_set_bytes`)."""
        return key_set_bytes(key_parameters(self.directory))

    def load_evaluation_keys(self, data: bytes) -> EvaluationKeys:
        """Parse serialized evaluation keys once (they are tens of MB); reuse the result."""
        try:
            return EvaluationKeys.deserialize(unwrap(self.meta, data, "evaluation keys"))
        except CiphertextError as err:
            raise EvaluationKeyError(str(err)) from err
        except (RuntimeError, ValueError) as err:
            raise EvaluationKeyError(f"evaluation keys are corrupted or truncated: {err}") from err

    def parse_ciphertext(self, data: bytes, what: str = "ciphertext") -> Value:
        """Check framing and parse; raises CiphertextError for anything that is not ours."""
        try:
            return Value.deserialize(unwrap(self.meta, data, what))
        except CiphertextError:
            raise
        except (RuntimeError, ValueError) as err:
            raise CiphertextError(f"{what} is corrupted or truncated: {err}") from err

    def run(self, template: bytes, probe: bytes, evaluation_keys: bytes | EvaluationKeys) -> bytes:
        """The encrypted bit (1 = same person) for two encrypted embeddings."""
        return self.run_many([template], probe, evaluation_keys)[0]

    def run_many(self, templates: list[bytes], probe: bytes, evaluation_keys: bytes | EvaluationKeys) -> list[bytes]:
        """One encrypted bit per template, in order: the largest batched circuit that fits runs first,
        what is left (fewer templates than the smallest batch) runs one comparison per run."""
        keys = evaluation_keys
        if not isinstance(keys, EvaluationKeys):
            keys = self.load_evaluation_keys(keys)
        values = [self.parse_ciphertext(t, "template ciphertext") for t in templates]
        b = self.parse_ciphertext(probe, "probe ciphertext")
        results: list[bytes] = []
        start = time.perf_counter()
        while len(results) < len(values):
            left = values[len(results) :]
            k = next((k for k in self.batch_sizes if k <= len(left)), 1)
            try:
                out = (
                    self._batches[k].run(*left[:k], b, evaluation_keys=keys)
                    if k > 1
                    else self._run_pair(left[0], b, keys)
                )
            except (RuntimeError, ValueError) as err:
                raise CiphertextError(f"the FHE runtime rejected the inputs: {err}") from err
            results += [wrap(self.meta, v.serialize()) for v in (out if isinstance(out, tuple) else (out,))]
        self.last_run_s = time.perf_counter() - start
        return results
