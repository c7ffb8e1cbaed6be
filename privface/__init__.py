"""privface — encrypted face verification, from the user's side.

    from privface import VerificationClient

    with VerificationClient("http://127.0.0.1:8000") as client:
        result = client.compare("a.jpg", "b.jpg")  # encoded, encrypted here; compared under FHE there
        print(result.same, result.timings)

Where things are (docs/architecture.md): `privface_core` (the error tree, settings, the wire protocol),
`client_encoder` (photo -> embedding, in clear, on the device), `fhe_head` (the encrypted head:
FHEClient / FHEServer roles and the HTTP server `fhe_head.service`), and this package (the user's client,
the CLI `python -m privface`, example photos). The error tree is re-exported here.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from privface_core.errors import (
    ArtifactError,
    AuthError,
    CiphertextError,
    CryptoError,
    EvaluationKeyError,
    EvictedKeysError,
    InputError,
    InvalidImageError,
    KeysGoneError,
    NoFaceError,
    NotABitError,
    NotPrivfaceServerError,
    PrivfaceError,
    QuotaError,
    RetiredCircuitError,
    ServiceError,
    SettingError,
    TemplateExistsError,
    UnknownKeyError,
    UnknownLevelError,
    UnknownTemplateError,
)

if TYPE_CHECKING:
    from privface.client import VerificationClient
    from privface.local_server import LocalServer
    from privface.result import CompareResult

# Loaded on first use: `python -m privface --help` (this package's CLI) need not load the FHE runtime and torch.
_LAZY = {
    "VerificationClient": "privface.client",
    "LocalServer": "privface.local_server",
    "CompareResult": "privface.result",
}

__all__ = [
    "ArtifactError",
    "AuthError",
    "CiphertextError",
    "CompareResult",
    "CryptoError",
    "EvaluationKeyError",
    "EvictedKeysError",
    "InputError",
    "InvalidImageError",
    "KeysGoneError",
    "LocalServer",
    "NoFaceError",
    "NotABitError",
    "NotPrivfaceServerError",
    "PrivfaceError",
    "QuotaError",
    "RetiredCircuitError",
    "ServiceError",
    "SettingError",
    "TemplateExistsError",
    "UnknownKeyError",
    "UnknownLevelError",
    "UnknownTemplateError",
    "VerificationClient",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'privface' has no attribute {name!r}")
