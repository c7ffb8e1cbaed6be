"""One exception tree for the whole project, client and server alike: catch `PrivfaceError` to catch every
expected failure.

    PrivfaceError
    ├── InputError               the photo or embedding given cannot be used
    │   ├── InvalidImageError    not an image, truncated, empty, too small or too large, missing file
    │   ├── NoFaceError          no face in the photo
    │   └── UnknownLevelError    a security level the head does not offer
    ├── SettingError             a PRIVFACE_* environment variable that cannot be read
    ├── ArtifactError            shipped models/heads missing, of another version or another encoder
    ├── CryptoError              encrypted material that cannot be used
    │   ├── CiphertextError      corrupted, truncated, foreign or for another circuit
    │   ├── EvaluationKeyError   unreadable evaluation keys
    │   └── NotABitError         decrypted a non-bit: computed or decrypted under another key
    └── ServiceError             the verification server refused a request or cannot be reached
        ├── NotPrivfaceServerError  the URL answers, but not as a privface server
        ├── AuthError            401 no valid, fresh signature of the key owner
        ├── KeysGoneError        the server does not hold our evaluation keys: upload them again
        │   ├── UnknownKeyError  404 a key id it does not know (never uploaded, forgotten, a new server)
        │   ├── EvictedKeysError 410 known, but its key file was evicted
        │   └── RetiredCircuitError 410 keys of a circuit the server no longer serves
        ├── UnknownTemplateError 404 no template of that name under this key
        ├── TemplateExistsError  409 a template of that name exists (replace it explicitly)
        └── QuotaError           429 a limit of the server reached (the limit named)

The server raises the service errors and answers `{"detail": message, "code": code}` with their status; the
client raises the same class again from the code (`privface_core.protocol.error_from`), so a caller tells
"upload the keys again" from "quota" from "not a privface server" by type, never by reading the message.
Input and crypto errors are also `ValueError`s (bad input, not a crash). Messages are one line, written
for the person who gave the input.
"""

from __future__ import annotations

__all__ = [
    "ArtifactError",
    "CiphertextError",
    "CryptoError",
    "EnrolmentError",
    "EvaluationKeyError",
    "InputError",
    "InvalidImageError",
    "NoFaceError",
    "AuthError",
    "EvictedKeysError",
    "KeysGoneError",
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
]


class PrivfaceError(Exception):
    """Base of every error this project raises on purpose."""


class InputError(PrivfaceError, ValueError):
    """The photo or embedding given cannot be used."""


class InvalidImageError(InputError):
    """The input could not be read as a photo (or is too small or too large to be one)."""


class NoFaceError(InputError):
    """No face was found in the image."""


class EnrolmentError(InputError):
    """Photos given for one enrolment that cannot make one template (too many, or not one person)."""


class UnknownLevelError(InputError):
    """A security level this head does not offer (a bad input: one clear line, never a default)."""


class SettingError(PrivfaceError, ValueError):
    """A PRIVFACE_* environment variable whose value cannot be used (`privface_core.settings`)."""


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
    request it refuses. `status`: the HTTP status that goes with it, where one does; `code`: the error's
    name on the wire (`privface_core.protocol`), for the subclasses a caller acts on."""

    status: int | None = None
    code: str | None = None

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        if status is not None:
            self.status = status


class NotPrivfaceServerError(ServiceError):
    """The URL answers, but not as a privface server (another service, a proxy's error page, a redirect)."""


class AuthError(ServiceError, ValueError):
    """A request without a valid, fresh signature of the key owner."""

    status, code = 401, "auth"


class KeysGoneError(ServiceError, LookupError):
    """The server does not hold the evaluation keys this request needs: upload them again."""

    status, code = 410, "keys_gone"


class UnknownKeyError(KeysGoneError):
    """A key id the server does not know (never uploaded, forgotten, or a server with a new store)."""

    status, code = 404, "unknown_key"


class EvictedKeysError(KeysGoneError):
    """The owner is known, but its evaluation keys were evicted from the server."""

    status, code = 410, "keys_evicted"


class RetiredCircuitError(KeysGoneError):
    """Keys of a head circuit the server no longer serves (it was rebuilt): new keys are needed."""

    status, code = 410, "circuit_retired"


class UnknownTemplateError(ServiceError, LookupError):
    """No template of that name under this key."""

    status, code = 404, "unknown_template"


class TemplateExistsError(ServiceError, ValueError):
    """A template of that name already exists for this key."""

    status, code = 409, "template_exists"


class QuotaError(ServiceError):
    """A configured limit of the server reached (HTTP 429, the limit named): retry later or ask for less."""

    status, code = 429, "quota"
