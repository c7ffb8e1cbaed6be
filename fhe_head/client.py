"""Client role: key generation, encryption of one embedding at a time, decryption of the bit.

The secret key never leaves this object (or its key directory, files with mode 0600).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from concrete import fhe

from fhe_head.artifacts import DEFAULT_POINT, load_meta, point_dir, unwrap, wrap
from fhe_head.head import HeadParams
from privface.errors import ArtifactError, CiphertextError, NotABitError


class FHEClient:
    """Everything the key owner does. `key_dir` keeps the secret key between sessions."""

    def __init__(
        self, point: str | Path = DEFAULT_POINT, key_dir: str | Path | None = None, encoder_sha256: str | None = None
    ) -> None:
        self.directory = point_dir(point)
        self.meta = load_meta(self.directory, ("client.specs.json", "head.json"))
        if encoder_sha256 and encoder_sha256 != self.meta["encoder_onnx_sha256"]:
            raise ArtifactError(
                "this head was trained on embeddings of another encoder model "
                f"({self.meta['encoder_onnx_sha256'][:12]}..., yours {encoder_sha256[:12]}...)"
            )
        self.head = HeadParams.load(self.directory / "head.json")
        specs = fhe.ClientSpecs.deserialize((self.directory / "client.specs.json").read_bytes())
        self._client = fhe.Client(specs)
        self.key_file = Path(key_dir).expanduser() / f"{self.meta['circuit_id']}.keys" if key_dir else None

    # ---- keys ----------------------------------------------------------------------------
    def generate_keys(self, force: bool = False) -> None:
        """Create (or load from the key directory) the secret and evaluation keys."""
        if self.key_file and self.key_file.is_file() and not force:
            self._client.keys.load(self.key_file)
            return
        self._client.keys.generate(force=True)
        if self.key_file:
            self.key_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            tmp = self.key_file.with_suffix(".tmp")
            self._client.keys.save(tmp)
            os.chmod(tmp, 0o600)
            tmp.replace(self.key_file)

    def evaluation_keys(self) -> bytes:
        """Serialized evaluation keys for the server (public material: it cannot decrypt)."""
        return wrap(self.meta, self._client.evaluation_keys.serialize())

    # ---- data ----------------------------------------------------------------------------
    @property
    def levels(self) -> tuple[str, ...]:
        """The security levels this head offers (empty for a head without the level element)."""
        return self.head.levels

    def quantize(self, embedding: np.ndarray, level: str | None = None) -> np.ndarray:
        embedding = np.asarray(embedding, dtype=np.float64)
        if embedding.shape != self.head.mean.shape or not np.all(np.isfinite(embedding)):
            raise ValueError(f"expected a finite embedding of shape {self.head.mean.shape}, got {embedding.shape}")
        return self.head.quantize(embedding, level)

    def encrypt(self, embedding: np.ndarray, level: str | None = None) -> bytes:
        """One embedding, quantised and encrypted on its own: a template (level None: it serves every
        level) or a probe asking for a security level (`self.levels`, e.g. "1e-3"). The level travels
        inside the ciphertext; an unknown level raises privface.errors.UnknownLevelError."""
        encrypted, _ = self._client.encrypt(self.quantize(embedding, level), None)
        return wrap(self.meta, encrypted.serialize())

    def decrypt(self, result: bytes) -> bool:
        """True = same person."""
        try:
            value = fhe.Value.deserialize(unwrap(self.meta, result, "result"))
            bit = int(self._client.decrypt(value))
        except CiphertextError:
            raise
        except (RuntimeError, ValueError) as err:
            raise CiphertextError(f"result is corrupted or truncated: {err}") from err
        if bit not in (0, 1):
            raise NotABitError(f"decrypted {bit}, not a bit: the result was computed or decrypted under another key")
        return bool(bit)
