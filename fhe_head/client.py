"""Client role: key generation, encryption of one embedding at a time, decryption of the bit.

One role whatever built the circuit (meta.json's "engine"): a Concrete-ML point is read through Concrete-ML's
`FHEModelClient` (its client.zip: the input and output quantisers), a concrete-python point through concrete's
client specs. Framing, key files, size and error handling are the same for both.

The secret key never leaves this object (or its key directory, files with mode 0600).
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from fhe_head.artifacts import (
    CLIENT_SPECS_FILE,
    CONCRETE_ML,
    DEFAULT_POINT,
    HEAD_FILE,
    concrete_ml_deployment,
    engine_of,
    key_file_in,
    load_meta,
    point_dir,
    unwrap,
    wrap,
)
from fhe_head.head import HeadParams
from privface_core import signals
from privface_core.errors import ArtifactError, CiphertextError, CryptoError, NotABitError
from privface_core.private_files import private_dir, write_private

with signals.kept():  # concrete's compiler library installs its own SIGINT/SIGTERM/SIGQUIT handlers when loaded
    from concrete import fhe


def check_key_file(path: Path) -> None:
    """CryptoError unless `path` is as long as its Cap'n Proto segment table says: concrete reads a truncated
    or garbage key file for tens of seconds, printing thousands of lines, before it fails."""
    with path.open("rb") as f:
        head = f.read(4)
        count = struct.unpack("<I", head)[0] + 1 if len(head) == 4 else 0
        table = f.read(4 * count) if 0 < count <= 512 else b""
    size = path.stat().st_size
    if len(table) != 4 * count or not table:
        expected = -1
    else:
        header = 4 + 4 * count
        expected = header + (-header % 8) + 8 * sum(struct.unpack(f"<{count}I", table))
    if expected != size:
        raise CryptoError(
            f"key file {path} is corrupted or truncated: delete it to make new keys "
            "(templates enrolled with the old ones can then not be used), or restore it"
        )


class FHEClient:
    """Everything the key owner does. `key_dir` keeps the secret key between sessions."""

    def __init__(
        self, point: str | Path = DEFAULT_POINT, key_dir: str | Path | None = None, encoder_sha256: str | None = None
    ) -> None:
        self.directory = point_dir(point)
        self.meta = load_meta(self.directory, (CLIENT_SPECS_FILE, HEAD_FILE))
        if encoder_sha256 and encoder_sha256 != self.meta["encoder_onnx_sha256"]:
            raise ArtifactError(
                "this head was trained on embeddings of another encoder model "
                f"({self.meta['encoder_onnx_sha256'][:12]}..., yours {encoder_sha256[:12]}...)"
            )
        self.head = HeadParams.load(self.directory / HEAD_FILE)
        self.engine = engine_of(self.meta)
        self._model = None  # Concrete-ML's FHEModelClient, for a Concrete-ML point
        if self.engine == CONCRETE_ML:
            try:
                # No key_dir: Concrete's key cache writes the secret key without restricting its mode; the
                # key file below (0600) is written through the same underlying concrete client instead.
                self._model = concrete_ml_deployment().FHEModelClient(str(self.directory))
            except ValueError as err:  # its own check of versions.json against the installed packages
                raise ArtifactError(f"{self.directory}: {err}") from err
            self._client: fhe.Client = self._model.client
        else:
            self._client = fhe.Client(fhe.ClientSpecs.deserialize((self.directory / CLIENT_SPECS_FILE).read_bytes()))
        self.key_file = key_file_in(key_dir, self.meta)
        self._keys_ready = False  # see _ensure_keys

    # ---- keys ----------------------------------------------------------------------------
    def generate_keys(self, force: bool = False) -> None:
        """Create (or load from the key directory) the secret and evaluation keys."""
        if self.key_file:
            private_dir(self.key_file.parent)  # one the user made with mode 0755 too
            # The fixed temporary name earlier versions saved keys under: an interrupted run left a copy of the
            # secret key there (mode 0644) that made every later save fail.
            self.key_file.with_suffix(".tmp").unlink(missing_ok=True)
        if self.key_file and self.key_file.is_file() and not force:
            check_key_file(self.key_file)
            try:
                self._client.keys.load(self.key_file)
            except RuntimeError as err:
                raise CryptoError(f"key file {self.key_file} cannot be read ({err}): delete or restore it") from err
        else:
            self._client.keys.generate(force=True)
            if self.key_file:
                write_private(self.key_file, self._client.keys.serialize())
        self._keys_ready = True

    def _ensure_keys(self) -> None:
        """The key directory's keys (or new ones) before anything uses them: encrypting first would use
        throw-away keys the runtime makes."""
        if not self._keys_ready:
            self.generate_keys()

    def evaluation_keys(self) -> bytes:
        """Serialized evaluation keys for the server (public material: it cannot decrypt)."""
        self._ensure_keys()
        return wrap(self.meta, self._client.evaluation_keys.serialize())

    # ---- data ----------------------------------------------------------------------------
    @property
    def levels(self) -> tuple[str, ...]:
        """The security levels this head offers (empty for a head without the level element)."""
        return self.head.offered

    def quantize(self, embedding: np.ndarray, level: str | None = None) -> np.ndarray:
        embedding = np.asarray(embedding, dtype=np.float64)
        if embedding.shape != self.head.mean.shape or not np.all(np.isfinite(embedding)):
            raise ValueError(f"expected a finite embedding of shape {self.head.mean.shape}, got {embedding.shape}")
        return self.head.quantize(embedding, level)

    def encrypt(self, embedding: np.ndarray, level: str | None = None) -> bytes:
        """One embedding, quantised and encrypted on its own: a template (level None: it serves every
        level) or a probe asking for a security level (`self.levels`, e.g. "1e-3"). The level travels
        inside the ciphertext; an unknown level raises privface_core.errors.UnknownLevelError."""
        return self.encrypt_vector(self.quantize(embedding, level))

    def encrypt_vector(self, vector: np.ndarray) -> bytes:
        """One integer vector (`HeadParams.quantize`'s output), encrypted alone as the circuit's first input.

        Templates and probes are both made this way: the circuit's two inputs have the same shape, encoding and
        key (checked when the artifacts are written), so either ciphertext serves as either input.
        """
        q = np.asarray(vector)
        head = self.head
        if q.shape != (head.vector_length,) or not np.array_equal(q, np.round(q)):
            raise ValueError(f"expected an integer vector of length {head.vector_length}, got shape {q.shape}")
        if q.min() < head.q_min or q.max() > head.q_max:
            raise ValueError(f"vector entries must lie in [{head.q_min}, {head.q_max}]")
        self._ensure_keys()
        if self._model is not None:
            # Concrete-ML's input quantiser (the identity on these integers, checked at build) then (1, V)
            payload = self._model.quantize_encrypt_serialize(q.astype(np.float64)[None, :], None)[0]
        else:
            payload = self._client.encrypt(q.astype(np.int64), None)[0].serialize()
        return wrap(self.meta, payload)

    def decrypt(self, result: bytes) -> bool:
        """True = same person. NotABitError when the result does not decrypt to 0 or 1 (another key)."""
        self._ensure_keys()
        try:
            payload = unwrap(self.meta, result, "result")
            if self._model is not None:
                value = np.asarray(self._model.deserialize_decrypt_dequantize(payload)).ravel()[0]
            else:
                value = self._client.decrypt(fhe.Value.deserialize(payload))
            bit = float(value)
        except CiphertextError:
            raise
        except (RuntimeError, ValueError) as err:
            raise CiphertextError(f"result is corrupted or truncated: {err}") from err
        if bit not in (0.0, 1.0):
            raise NotABitError(f"decrypted {bit:g}, not a bit: the result was computed or decrypted under another key")
        return bool(bit)
