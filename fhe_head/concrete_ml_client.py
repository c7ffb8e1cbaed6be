"""Client role of the Concrete-ML head build (`fhe_head.concrete_ml_head`): keys, encryption of one integer
vector at a time, decryption of the bit, through Concrete-ML's `FHEModelClient`.

Ciphertexts, results and evaluation keys travel framed with the build's circuit id (`fhe_head.artifacts.wrap`),
as the direct circuit's do, so material of another circuit is refused before concrete parses it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from concrete.ml.deployment import FHEModelClient

from fhe_head.artifacts import load_meta, unwrap, wrap
from fhe_head.head import HeadParams
from privface.errors import CiphertextError, NotABitError


class ConcreteMLHeadClient:
    """The key owner of a Concrete-ML head folder (`fhe_head.concrete_ml_head.save_artifacts`).

    `key_dir`: Concrete's key cache directory (secret key included, unencrypted); None keeps keys in memory.
    """

    def __init__(self, directory: str | Path, key_dir: str | Path | None = None) -> None:
        self.directory = Path(directory)
        self.meta = load_meta(self.directory, ("client.zip", "head.json"))
        self.head = HeadParams.load(self.directory / "head.json")
        self._client = FHEModelClient(str(self.directory), key_dir=str(key_dir) if key_dir else None)

    def generate_keys(self, force: bool = False) -> None:
        """Create the secret and evaluation keys (or load them from the key directory)."""
        self._client.generate_private_and_evaluation_keys(force=force)

    def evaluation_keys(self) -> bytes:
        """Serialized evaluation keys for the server (public material: it cannot decrypt)."""
        return wrap(self.meta, self._client.get_serialized_evaluation_keys())

    def encrypt(self, vector: np.ndarray, probe: bool = False) -> bytes:
        """One integer vector (`HeadParams.quantize`'s output), encrypted on its own as the circuit's first input
        (a template) or its second (`probe=True`); the other input is not needed to encrypt it."""
        q = np.asarray(vector)
        head = self.head
        if q.shape != (head.vector_length,) or not np.array_equal(q, np.round(q)):
            raise ValueError(f"expected an integer vector of length {head.vector_length}, got shape {q.shape}")
        if q.min() < head.q_min or q.max() > head.q_max:
            raise ValueError(f"vector entries must lie in [{head.q_min}, {head.q_max}]")
        x = q.astype(np.float64)[None, :]
        encrypted = (
            self._client.quantize_encrypt_serialize(None, x)
            if probe
            else self._client.quantize_encrypt_serialize(x, None)
        )
        return wrap(self.meta, encrypted[1] if probe else encrypted[0])

    def decrypt(self, result: bytes) -> bool:
        """True = same person. NotABitError when the result does not decrypt to 0 or 1 (another key)."""
        try:
            value = self._client.deserialize_decrypt_dequantize(unwrap(self.meta, result, "result"))
        except CiphertextError:
            raise
        except (RuntimeError, ValueError) as err:
            raise CiphertextError(f"result is corrupted or truncated: {err}") from err
        bit = float(np.asarray(value).ravel()[0])
        if bit not in (0.0, 1.0):
            raise NotABitError(f"decrypted {bit}, not a bit: the result was computed or decrypted under another key")
        return bool(bit)
