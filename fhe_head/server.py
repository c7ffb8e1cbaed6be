"""Server role: run the compiled head on two ciphertexts with the client's evaluation keys.

Holds no secret key and imports nothing that can decrypt (no `fhe.Client`, no key files):
its inputs are ciphertexts and evaluation keys, its output one encrypted bit.
"""

from __future__ import annotations

import time
from pathlib import Path

from concrete.fhe.compilation.evaluation_keys import EvaluationKeys
from concrete.fhe.compilation.server import Server
from concrete.fhe.compilation.value import Value

from fhe_head.artifacts import DEFAULT_POINT, load_meta, point_dir, unwrap, wrap
from privface.errors import CiphertextError, EvaluationKeyError


class FHEServer:
    """Loads `server.zip` of a head point and evaluates it."""

    def __init__(self, point: str | Path = DEFAULT_POINT) -> None:
        self.directory = point_dir(point)
        self.meta = load_meta(self.directory, ("server.zip",))
        self._server = Server.load(self.directory / "server.zip")
        self.last_run_s: float | None = None

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
        keys = evaluation_keys
        if not isinstance(keys, EvaluationKeys):
            keys = self.load_evaluation_keys(keys)
        a = self.parse_ciphertext(template, "template ciphertext")
        b = self.parse_ciphertext(probe, "probe ciphertext")
        start = time.perf_counter()
        try:
            result = self._server.run(a, b, evaluation_keys=keys)
        except (RuntimeError, ValueError) as err:
            raise CiphertextError(f"the FHE runtime rejected the inputs: {err}") from err
        self.last_run_s = time.perf_counter() - start
        return wrap(self.meta, result.serialize())
