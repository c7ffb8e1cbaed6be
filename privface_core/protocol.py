"""The wire protocol between the user's client (`privface.client`) and the server (`fhe_head.service`):
the API version, the JSON bodies both sides read and write, and the error codes.

Requests are strict (unknown fields refused: the server reads them); answers ignore fields they do not
know (the client reads them: a newer server may say more). Ciphertexts and encrypted bits travel as
base64. Every request on an owner's data is signed (`privface_core.auth`). An error answer is
`ErrorBody`: the message, and for the errors a caller acts on, the code of its class in
`privface_core.errors`, which `error_from` raises again on the client's side.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from privface_core.errors import (
    AuthError,
    EvictedKeysError,
    QuotaError,
    RetiredCircuitError,
    ServiceError,
    TemplateExistsError,
    UnknownKeyError,
    UnknownTemplateError,
)

__all__ = [
    "API_VERSION",
    "EncryptedResult",
    "EnrolRequest",
    "ErrorBody",
    "IdentifyResult",
    "KeyInfo",
    "Match",
    "NameRequest",
    "NamedProbeRequest",
    "PointInfo",
    "ProbeRequest",
    "TemplateInfo",
    "VerifyRequest",
    "VersionInfo",
    "error_from",
]

API_VERSION = "3"  # 3: signed requests carry their body hash in a header (checked before the body is read)
# The errors that travel with a code: the server answers their status and code, the client raises them again.
CODED_ERRORS: dict[str, type[ServiceError]] = {
    kind.code: kind
    for kind in (
        AuthError,
        UnknownKeyError,
        EvictedKeysError,
        RetiredCircuitError,
        UnknownTemplateError,
        TemplateExistsError,
        QuotaError,
    )
}


class _Request(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")


class _Answer(BaseModel):
    model_config = ConfigDict(extra="ignore")


# ---- requests (client -> server) ---------------------------------------------------------------
class VerifyRequest(_Request):
    template: str = Field(description="base64 ciphertext of the enrolled embedding")
    probe: str = Field(description="base64 ciphertext of the new embedding")


class ProbeRequest(_Request):
    probe: str = Field(description="base64 ciphertext of the new embedding")


class NamedProbeRequest(_Request):
    name: str
    probe: str = Field(description="base64 ciphertext of the new embedding")


class NameRequest(_Request):
    name: str


class EnrolRequest(_Request):
    name: str
    ciphertext: str = Field(description="base64 ciphertext of the embedding to store")
    replace: bool = False


# ---- answers (server -> client) ----------------------------------------------------------------
class EncryptedResult(_Answer):
    result: str = Field(description="base64 encrypted bit: only the key owner can read it")
    fhe_s: float = Field(description="server time spent in the FHE circuit")


class Match(_Answer):
    name: str
    result: str
    fhe_s: float


class IdentifyResult(_Answer):
    results: list[Match]
    fhe_s_total: float
    wall_s: float


class KeyInfo(_Answer):
    key_id: str
    point: str
    circuit_id: str
    size: int
    created: float
    stored: bool


class TemplateInfo(_Answer):
    name: str
    size: int
    created: float


class PointInfo(_Answer):
    circuit_id: str
    dims: int
    n_bits: int | None = None  # with --limit expose_versions=true only
    programmable_bootstrap_count: int | None = None


class VersionInfo(_Answer):
    api: str
    server_id: str | None = None  # what our signatures name: a request sent to it is refused by any other server
    points: dict[str, PointInfo]
    concrete_python: str | None = None


class ErrorBody(_Answer):
    detail: str
    code: str | None = None


def error_from(status: int, message: str, code: str | None) -> ServiceError:
    """The error a server's refusal stands for: its class in the error tree when the code names one."""
    return CODED_ERRORS.get(code or "", ServiceError)(message, status)
