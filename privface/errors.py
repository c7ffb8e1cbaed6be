"""One exception tree for the whole project: catch `PrivfaceError` to catch every expected failure.

    PrivfaceError
    ├── InputError            the photo or embedding given cannot be used
    │   ├── InvalidImageError not an image, truncated, empty, too small or too large, missing file
    │   ├── NoFaceError       no face in the photo
    │   └── UnknownLevelError a security level the head does not offer
    ├── ArtifactError         shipped models/heads missing, of another version or another encoder
    ├── CryptoError           encrypted material that cannot be used
    │   ├── CiphertextError   corrupted, truncated, foreign or for another circuit
    │   ├── EvaluationKeyError unreadable evaluation keys
    │   └── NotABitError      decrypted a non-bit: computed or decrypted under another key
    └── ServiceError          the verification server refused a request or cannot be reached
                              (server side: not found 404, conflict 409, evicted 410, quota 429,
                              bad signature 401 — fhe_head.service.store, privface.auth)

Input and crypto errors are also `ValueError`s (bad input, not a crash). Messages are one line,
written for the person who gave the input.
"""

from __future__ import annotations

__all__ = [
    "ArtifactError",
    "CiphertextError",
    "CryptoError",
    "EvaluationKeyError",
    "InputError",
    "InvalidImageError",
    "NoFaceError",
    "NotABitError",
    "PrivfaceError",
    "ServiceError",
    "UnknownLevelError",
]


class PrivfaceError(Exception):
    """Base of every error this project raises on purpose."""


class InputError(PrivfaceError, ValueError):
    """The photo or embedding given cannot be used."""


class InvalidImageError(InputError):
    """The input could not be read as a photo (or is too small or too large to be one)."""


class NoFaceError(InputError):
    """No face was found in the image."""


class UnknownLevelError(InputError):
    """A security level this head does not offer (a bad input: one clear line, never a default)."""


class ArtifactError(PrivfaceError):
    """Artifacts missing, of another version, or built for another encoder."""


class CryptoError(PrivfaceError, ValueError):
    """Encrypted material (ciphertexts, keys, results) that cannot be used."""


class CiphertextError(CryptoError):
    """A ciphertext that is corrupted, truncated, or made for another circuit."""


class EvaluationKeyError(CryptoError):
    """Evaluation keys that cannot be read."""


class NotABitError(CryptoError):
    """The decrypted result is not 0 or 1: the ciphertext was run or decrypted under another key."""


class ServiceError(PrivfaceError):
    """The server refused a request (its message included) or could not be reached; on the server, a
    request it refuses. `status`: the HTTP status that goes with it, where one does."""

    status: int | None = None

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        if status is not None:
            self.status = status
