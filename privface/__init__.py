"""privface — encrypted face verification, from the user's side.

    from privface import VerificationClient

    with VerificationClient("http://127.0.0.1:8000") as client:
        result = client.compare("a.jpg", "b.jpg")  # encoded, encrypted here; compared under FHE there
        print(result.same, result.timings)

Where things are: `client_encoder` (photo -> embedding, in clear, on the device), `fhe_head` (the
encrypted head: FHEClient / FHEServer roles and the HTTP server `fhe_head.service`), and this
package (the user's client, the CLI `python -m privface`, the error tree, example photos).
Names are imported lazily so that `privface.errors` can be used by every package without cycles.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from privface.errors import (
    ArtifactError,
    CiphertextError,
    CryptoError,
    EvaluationKeyError,
    InputError,
    InvalidImageError,
    NoFaceError,
    NotABitError,
    PrivfaceError,
    ServiceError,
    UnknownLevelError,
)

_LAZY = {
    "VerificationClient": "privface.client",
    "CompareResult": "privface.result",
    "LocalServer": "privface.local_server",
}

__all__ = [
    "ArtifactError",
    "CiphertextError",
    "CompareResult",
    "CryptoError",
    "EvaluationKeyError",
    "InputError",
    "InvalidImageError",
    "LocalServer",
    "NoFaceError",
    "NotABitError",
    "PrivfaceError",
    "ServiceError",
    "UnknownLevelError",
    "VerificationClient",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'privface' has no attribute {name!r}")
