"""The HTTP routes: service info, evaluation keys, verification and templates.

Request bodies are read here with explicit size limits and a per-chunk timeout, then the owner's
signature is checked over the exact bytes received before any of them are parsed. Ciphertexts
and keys are checked against their circuit's exact encoding in microseconds; concrete parses
only inputs that passed, off the event loop.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import logging
import re
import time
import unicodedata
from collections.abc import AsyncIterator
from typing import Annotated, Any

from concrete.fhe.version import __version__ as concrete_version
from fastapi import APIRouter, HTTPException, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field, ValidationError
from starlette.requests import ClientDisconnect

from fhe_head.service.connections import client_address, client_network
from fhe_head.service.state import ClientGone, Limits, ServiceState, UploadSlot, UploadStoppedError
from fhe_head.service.store import KeyRecord, StorageFullError, disk_full
from privface_core import auth
from privface_core.errors import EvictedKeysError, QuotaError, RetiredCircuitError
from privface_core.protocol import (
    API_VERSION,
    EncryptedResult,
    EnrolRequest,
    IdentifyResult,
    KeyInfo,
    Match,
    NamedProbeRequest,
    NameRequest,
    ProbeRequest,
    TemplateInfo,
    VerifyRequest,
    VersionInfo,
)

log = logging.getLogger("fhe_head.service")

NAME_PATTERN = re.compile(r"\w(?:[\w .'@-]{0,98}[\w.'@-])?")  # no leading or trailing space

service = APIRouter(tags=["service"])
keys = APIRouter(tags=["keys"])
verification = APIRouter(tags=["verify"])
templates = APIRouter(tags=["templates"])


# ---- reading and checking requests -----------------------------------------------------------
def state_of(request: Request) -> ServiceState:
    return request.app.state.service


def _require_type(request: Request, expected: str) -> None:
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != expected:
        raise HTTPException(415, f"expected Content-Type {expected}")


def _declared_length(request: Request) -> int | None:
    declared = request.headers.get("content-length")
    if declared is None:
        return None
    if not (declared.isascii() and declared.isdigit()) or len(declared) > 15:
        raise HTTPException(400, "bad Content-Length")
    return int(declared)


async def _chunks(request: Request, limit: int, limits: Limits) -> AsyncIterator[bytes]:
    """The body in chunks, at most `limit` bytes, each chunk within `body_chunk_timeout_s`, after that
    much time of grace at `body_min_rate_bytes_s` on average, and the whole of it within `max_body_s`:
    a client trickling a byte now and then would otherwise hold its connection (and an upload slot)
    for as long as it likes."""
    declared = _declared_length(request)
    if declared is not None and declared > limit:
        raise HTTPException(413, f"body exceeds the limit of {limit} bytes")
    timeout, rate = limits.body_chunk_timeout_s, limits.body_min_rate_bytes_s
    stream, size, start = request.stream().__aiter__(), 0, time.monotonic()
    deadline = start + limits.max_body_s
    while True:
        try:
            chunk = await asyncio.wait_for(stream.__anext__(), min(timeout, max(0.0, deadline - time.monotonic())))
        except StopAsyncIteration:
            return
        except TimeoutError:
            if time.monotonic() >= deadline:
                raise HTTPException(408, f"body not received within {limits.max_body_s:.0f} s") from None
            raise HTTPException(408, f"no body data for {timeout:.0f} s") from None
        except ClientDisconnect:
            raise ClientGone() from None
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, f"body exceeds the limit of {limit} bytes")
        if size < rate * (time.monotonic() - start - timeout):
            raise HTTPException(408, f"body arriving slower than {rate} bytes/s")
        yield chunk


def _body_limit(request: Request, state: ServiceState) -> int:
    """The most a signed request's body may hold (checked, with its type, before its signature)."""
    if request.method in ("GET", "DELETE"):
        return 0
    _require_type(request, "application/json")
    return state.limits.max_json_bytes


async def _body(request: Request, state: ServiceState, limit: int) -> bytes:
    return b"".join([c async for c in _chunks(request, limit, state.limits)])


def _signature_headers(request: Request) -> dict[str, str]:
    names = (auth.HEADER_TIME, auth.HEADER_NONCE, auth.HEADER_SIGNATURE, auth.HEADER_AUDIENCE)
    return {k: request.headers.get(k, "") for k in names}


def _verify_signature(
    request: Request, state: ServiceState, identity: str, public_key: bytes, digest: bytes, reads: bool = False
) -> None:
    query = request.scope.get("query_string", b"").decode("latin-1")
    headers = _signature_headers(request)
    nonces = state.read_nonces if reads else state.nonces  # reads go on while the disk is full
    audience = state.store.server_id
    auth.verify(public_key, headers, request.method, request.url.path, query, identity, digest, nonces, audience)


def _check_body(signed_sha256: bytes, received_sha256: bytes) -> None:
    if received_sha256 != signed_sha256:
        raise auth.AuthError("the body does not match the body hash it was signed with")


async def signed(request: Request, model: type[BaseModel] | None = None, reads: bool = False) -> tuple[KeyRecord, Any]:
    """The owner's record and the parsed body, once the owner's signature over the raw body checks.
    `reads`: the request changes nothing stored (it is then served while the disk is full)."""
    state = state_of(request)
    key_id = request.headers.get(auth.HEADER_KEY, "")
    if not key_id:
        raise auth.AuthError("this request must be signed by the key owner (privface_core/auth.py)")
    if len(key_id) != auth.KEY_ID_CHARS or not all(c in "0123456789abcdef" for c in key_id):
        raise auth.AuthError("malformed key id")
    # The signature is checked before the body is read (over the body hash it names, which the body must then
    # have): an unknown key id or a bad, stale or replayed signature does not get to send a body at all.
    record = await run_in_threadpool(state.store.key, key_id)
    limit = _body_limit(request, state)
    declared = _declared_length(request)
    if declared is not None and declared > limit:
        raise HTTPException(413, f"body exceeds the limit of {limit} bytes")
    auth.check_fresh(_signature_headers(request), state.nonces, state.store.server_id)
    digest = auth.signed_body_sha256(request.headers)
    await run_in_threadpool(_verify_signature, request, state, key_id, record.public_key, digest, reads)
    raw = await _body(request, state, limit)
    _check_body(digest, hashlib.sha256(raw).digest())
    if model is None:
        return record, None
    try:
        return record, model.model_validate_json(raw)
    except ValidationError as err:
        fields = sorted({".".join(str(p) for p in e["loc"]) or "body" for e in err.errors()})
        raise HTTPException(422, f"invalid request fields: {', '.join(fields)}") from None


def _b64(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise HTTPException(400, f"{what} is not valid base64") from None


def _ciphertext(state: ServiceState, record: KeyRecord, text: str, what: str) -> bytes:
    data = _b64(text, what)
    state.formats[record.point].check_ciphertext(data, what)
    return data


def _name(text: str) -> str:
    """Template names: NFKC-normal, full match of letters/digits and a few separators, no control characters."""
    if unicodedata.normalize("NFKC", text) != text or any(unicodedata.category(c).startswith("C") for c in text):
        raise HTTPException(422, "name: use plain characters (NFKC-normal, no control or format characters)")
    if not NAME_PATTERN.fullmatch(text):
        rule = "1-100 letters, digits, spaces or . ' @ - _, starting with a letter/digit, not ending with a space"
        raise HTTPException(422, f"name: {rule}")
    return text


def _served(state: ServiceState, record: KeyRecord, runs: bool = True) -> None:
    """410 unless the owner's circuit is served (and, for FHE runs, its key file is here)."""
    server = state.servers.get(record.point)
    if server is None or server.meta["circuit_id"] != record.circuit_id:
        raise RetiredCircuitError("these keys belong to a circuit this server no longer serves: upload new keys")
    if runs and not record.stored:
        raise EvictedKeysError("evaluation keys evicted from the server: upload them again")


async def _runs(request: Request, record: KeyRecord, templates: list[bytes], probe: bytes) -> list[tuple[bytes, float]]:
    """The engine's answers for these runs, awaited on the event loop (no thread waits for them); once the
    client has gone, the runs not started yet are dropped."""
    # Owners whose keys came from one network, and within it from one address, share turns: registrations by the
    # dozen do not multiply turns (IPv4 /24, IPv6 /64; an older store's owners without an address have their own).
    address = record.address
    group = (f"network {client_network(address)}", f"address {address}") if address else ()
    runs = state_of(request).engine.submit(record.point, record.key_id, templates, probe, group)
    answers = asyncio.wrap_future(runs)
    while True:
        done, _ = await asyncio.wait({answers}, timeout=0.25)
        if done:
            return answers.result()
        if await request.is_disconnected():
            runs.cancel()
            answers.cancel()
            log.info("client went away: its queued FHE runs are cancelled")
            raise ClientGone()


def _encode(result: tuple[bytes, float]) -> tuple[str, float]:
    return base64.b64encode(result[0]).decode(), result[1]


def _body_schema(model: type[BaseModel]) -> dict:
    """OpenAPI description of a JSON body we read ourselves (to enforce limits and signatures)."""
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": model.model_json_schema()}}}}


# ---- service info ------------------------------------------------------------------------------
class Health(BaseModel):
    status: str
    points: list[str] = Field(description="the head points served")
    queued_runs: int | None = Field(description="FHE runs waiting for a worker")
    engine: dict = Field(description="the FHE engine's own figures (workers, key cache, ...)")


@service.get("/health", response_model=Health)
def health(request: Request) -> dict:
    state = state_of(request)
    engine = state.engine.health()
    return {"status": "ok", "points": sorted(state.servers), "queued_runs": engine.get("queued"), "engine": engine}


@service.get("/version", response_model=VersionInfo, response_model_exclude_none=True)
def version(request: Request) -> dict:
    state = state_of(request)
    fields = ["circuit_id", "dims"]
    body: dict = {"api": API_VERSION, "server_id": state.store.server_id}  # what signatures name (audience)
    if state.limits.expose_versions:
        fields += ["n_bits", "programmable_bootstrap_count"]
        body["concrete_python"] = concrete_version
    body["points"] = {name: {k: s.meta[k] for k in fields} for name, s in state.servers.items()}
    return body


# ---- evaluation keys ---------------------------------------------------------------------------
_KEY_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
    }
}


@keys.post("/v1/keys", status_code=201, response_model=KeyInfo, openapi_extra=_KEY_BODY)
async def upload_keys(request: Request, point: Annotated[str, Query()] = "accurate") -> dict:
    """Register evaluation keys with the owner's public signing key (header); returns the key id."""
    state = state_of(request)
    if point not in state.servers:
        raise HTTPException(404, f"unknown point; served: {sorted(state.servers)}")
    public_key = auth.parse_public_key(request.headers.get(auth.HEADER_PUBLIC_KEY, ""))
    _require_type(request, "application/octet-stream")
    expected = state.formats[point].evaluation_keys.length
    declared = _declared_length(request)
    if declared is None:
        raise HTTPException(411, f"a Content-Length is required: evaluation keys of {point} are {expected} bytes")
    if declared != expected:
        raise HTTPException(413 if declared > expected else 400, f"evaluation keys of {point} are {expected} bytes")
    # Signed before a byte of the body is read (over the declared hash, hence length): a request without a
    # valid signature costs nothing. Every upload signed and let in counts against its client address and
    # its signing key, whether it completes, fails or is abandoned.
    auth.check_fresh(_signature_headers(request), state.nonces, state.store.server_id)
    address = client_address(request.client.host) if request.client else "unknown"
    identity = base64.b64encode(public_key).decode()
    signed_sha256 = auth.signed_body_sha256(request.headers)
    await run_in_threadpool(_verify_signature, request, state, identity, public_key, signed_sha256)
    with state.receiving_upload(address, identity, time.monotonic()) as slot, state.store.partial_key() as part:
        return await _receive_keys(request, state, point, public_key, part, slot, signed_sha256)


async def _receive_keys(
    request: Request, state: ServiceState, point: str, public_key: bytes, part, slot: UploadSlot, signed_sha256: bytes
) -> dict:
    expected = state.formats[point].evaluation_keys.length
    digest = hashlib.sha256()
    try:
        with part.open("wb") as out:
            async for chunk in _chunks(request, expected, state.limits):
                if slot.stopped:
                    raise UploadStoppedError("key upload stopped: its slot went to a client of another network; retry")
                digest.update(chunk)
                out.write(chunk)
    except OSError as err:
        if disk_full(err):
            raise StorageFullError() from err
        raise
    _check_body(signed_sha256, digest.digest())
    key_id = auth.key_id_for(public_key, digest.digest())
    store = state.store
    if store.key_or_none(key_id) is None and store.owners() >= state.limits.max_owners:
        raise QuotaError(f"registered keys on this server: limit {state.limits.max_owners}")

    def check() -> None:  # exact format first (cheap); then concrete must parse it
        data = part.read_bytes()
        state.formats[point].check_evaluation_keys(data)
        state.servers[point].load_evaluation_keys(data)

    async with state.key_checks:
        await run_in_threadpool(check)
    record = store.add_key(part, key_id, point, state.servers[point].meta["circuit_id"], public_key, slot.address)
    limits = state.limits
    for evicted in store.evict(limits.max_keys, limits.max_key_store_bytes, limits.max_key_idle_s, keep=key_id):
        state.engine.forget(evicted)
    return record.to_dict()


@keys.get("/v1/keys/me", response_model=KeyInfo)
async def key_info(request: Request) -> dict:
    record, _ = await signed(request, reads=True)
    return record.to_dict()


@keys.delete("/v1/keys/me", status_code=204)
async def delete_key(request: Request) -> Response:
    """Forget these keys, the owner's signing key and every template stored under them."""
    record, _ = await signed(request)
    await run_in_threadpool(state_of(request).store.delete_key, record.key_id)
    state_of(request).engine.forget(record.key_id)
    return Response(status_code=204)


# ---- verification ------------------------------------------------------------------------------
async def _served_request(request: Request, model: type[BaseModel]) -> tuple[ServiceState, KeyRecord, Any]:
    """A signed FHE request on a circuit this server still serves: the state, the owner and the body."""
    state = state_of(request)
    record, body = await signed(request, model, reads=True)
    _served(state, record)
    return state, record, body


async def _verify_pair(request: Request, record: KeyRecord, template: bytes, probe: bytes) -> EncryptedResult:
    """One FHE run under the owner's admission limits; the encrypted bit and the server's FHE time."""
    state = state_of(request)
    with state.admit(record.key_id):
        result, fhe_s = _encode((await _runs(request, record, [template], probe))[0])
    return EncryptedResult(result=result, fhe_s=fhe_s)


@verification.post("/v1/verify", response_model=EncryptedResult, openapi_extra=_body_schema(VerifyRequest))
async def verify(request: Request) -> EncryptedResult:
    """Run the head on two ciphertexts sent now; returns the encrypted bit."""
    state, record, body = await _served_request(request, VerifyRequest)
    template = _ciphertext(state, record, body.template, "template")
    probe = _ciphertext(state, record, body.probe, "probe")
    return await _verify_pair(request, record, template, probe)


@verification.post(
    "/v1/templates/verify", response_model=EncryptedResult, openapi_extra=_body_schema(NamedProbeRequest)
)
async def verify_template(request: Request) -> EncryptedResult:
    """1:1 against a stored template."""
    state, record, body = await _served_request(request, NamedProbeRequest)
    probe = _ciphertext(state, record, body.probe, "probe")
    template = await run_in_threadpool(state.store.template, record.key_id, _name(body.name))
    return await _verify_pair(request, record, template, probe)


@verification.post("/v1/identify", response_model=IdentifyResult, openapi_extra=_body_schema(ProbeRequest))
async def identify(request: Request) -> IdentifyResult:
    """1:N: one encrypted bit per stored template of this key, scheduled fairly with other owners."""
    state, record, body = await _served_request(request, ProbeRequest)
    probe = _ciphertext(state, record, body.probe, "probe")
    stored = await run_in_threadpool(state.store.all_templates, record.key_id)
    if len(stored) > state.limits.max_identify_templates:
        limit = state.limits.max_identify_templates
        raise HTTPException(413, f"templates per identification: limit {limit} (this key holds {len(stored)})")
    loop = asyncio.get_running_loop()
    start = loop.time()
    with state.admit(record.key_id):
        blobs = [blob for _, blob in stored]
        runs = await _runs(request, record, blobs, probe)
    matches = [
        Match(name=name, result=r, fhe_s=s) for (name, _), (r, s) in zip(stored, map(_encode, runs), strict=True)
    ]
    return IdentifyResult(results=matches, fhe_s_total=sum(m.fhe_s for m in matches), wall_s=loop.time() - start)


# ---- templates ---------------------------------------------------------------------------------
@templates.post("/v1/templates", status_code=201, response_model=TemplateInfo, openapi_extra=_body_schema(EnrolRequest))
async def enrol(request: Request) -> dict:
    """Store an encrypted template under a name (checked to be in this circuit's exact encoding)."""
    state = state_of(request)
    record, body = await signed(request, EnrolRequest)
    name = _name(body.name)
    _served(state, record, runs=False)  # a template needs the circuit, not the key file
    ciphertext = _ciphertext(state, record, body.ciphertext, "ciphertext")
    await run_in_threadpool(state.servers[record.point].parse_ciphertext, ciphertext, "ciphertext")
    limits = state.limits
    stored = await run_in_threadpool(
        state.store.add_template,
        record.key_id,
        name,
        ciphertext,
        body.replace,
        limits.max_templates_per_key,
        limits.max_templates_total,
    )
    return stored.to_dict()


@templates.get("/v1/templates", response_model=list[TemplateInfo])
async def list_templates(request: Request) -> list[dict]:
    record, _ = await signed(request, reads=True)
    return [t.to_dict() for t in await run_in_threadpool(state_of(request).store.templates, record.key_id)]


@templates.post("/v1/templates/delete", status_code=204, openapi_extra=_body_schema(NameRequest))
async def delete_template(request: Request) -> Response:
    record, body = await signed(request, NameRequest)
    await run_in_threadpool(state_of(request).store.delete_template, record.key_id, _name(body.name))
    return Response(status_code=204)
