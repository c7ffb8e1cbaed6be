"""Server role of the Concrete-ML head build: Concrete-ML's `FHEModelServer` on two framed ciphertexts.

Holds no secret key and imports nothing that can decrypt: `FHEModelServer` loads only `server.zip` (no client
specs, no key generation; it makes a client object only for TFHE-rs interoperable circuits, which this is not).
"""

from __future__ import annotations

import time
from pathlib import Path

from concrete.fhe.compilation.evaluation_keys import EvaluationKeys
from concrete.fhe.compilation.value import Value
from concrete.ml.deployment import FHEModelServer

from fhe_head.artifacts import load_meta, unwrap, wrap
from privface.errors import CiphertextError, EvaluationKeyError


class ConcreteMLHeadServer:
    """Loads a Concrete-ML head folder's `server.zip` and evaluates it."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.meta = load_meta(self.directory, ("server.zip",))
        self._server = FHEModelServer(str(self.directory))
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
        """Check framing and parse; raises CiphertextError for anything that is not this circuit's."""
        try:
            return Value.deserialize(unwrap(self.meta, data, what))
        except CiphertextError:
            raise
        except (RuntimeError, ValueError) as err:
            raise CiphertextError(f"{what} is corrupted or truncated: {err}") from err

    def run(self, template: bytes, probe: bytes, evaluation_keys: bytes | EvaluationKeys) -> bytes:
        """The encrypted bit (1 = same person) for two encrypted vectors."""
        keys = (
            evaluation_keys
            if isinstance(evaluation_keys, EvaluationKeys)
            else self.load_evaluation_keys(evaluation_keys)
        )
        a = self.parse_ciphertext(template, "template ciphertext")
        b = self.parse_ciphertext(probe, "probe ciphertext")
        start = time.perf_counter()
        try:
            result = self._server.run((a, b), keys)
        except (RuntimeError, ValueError) as err:
            raise CiphertextError(f"the FHE runtime rejected the inputs: {err}") from err
        self.last_run_s = time.perf_counter() - start
        return wrap(self.meta, result.serialize())
