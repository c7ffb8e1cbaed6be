"""The verification server's HTTP API (FastAPI): encrypted 1:1 verification, enrolment and 1:N search.

What the server handles: evaluation keys (public), ciphertexts of quantised embeddings and
encrypted result bits. It imports nothing that can decrypt, stores no secret, and cannot tell
what any answer is. Bodies are read with explicit size limits; every bad input is a 4xx with a
plain message, never a crashed worker.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import os
import re
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated

from concrete.fhe.compilation.evaluation_keys import EvaluationKeys
from concrete.fhe.version import __version__ as concrete_version
from fastapi import FastAPI, HTTPException, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, ValidationError
from starlette.requests import ClientDisconnect

from fhe_head.artifacts import KEY_ID_CHARS, POINTS
from fhe_head.server import FHEServer
from fhe_head.service.store import ConflictError, NotFoundError, Store
from privface.errors import ArtifactError, CiphertextError, EvaluationKeyError

log = logging.getLogger(__name__)

API_VERSION = "1"
MAX_KEY_BYTES = 256 * 1024 * 1024  # evaluation keys are 27-75 MB per point
MAX_JSON_BYTES = 1024 * 1024  # a ciphertext is ~2 KB (base64 ~3 KB); identify carries one probe
NAME_PATTERN = re.compile(r"^[\w][\w .'@-]{0,99}$")
KEY_CACHE_SIZE = 4  # parsed evaluation keys kept in memory (parsing 70 MB takes ~1 s)


# ---- request / response bodies ---------------------------------------------------------------
class VerifyRequest(BaseModel):
    key_id: str
    template: str = Field(description="base64 ciphertext of the enrolled embedding")
    probe: str = Field(description="base64 ciphertext of the new embedding")


class ProbeRequest(BaseModel):
    probe: str = Field(description="base64 ciphertext of the new embedding")


class EnrolRequest(BaseModel):
    name: str
    ciphertext: str = Field(description="base64 ciphertext of the embedding to store")
    replace: bool = False


class EncryptedResult(BaseModel):
    result: str = Field(description="base64 encrypted bit: only the key owner can read it")
    fhe_s: float = Field(description="server time spent in the FHE circuit")


class Match(BaseModel):
    name: str
    result: str
    fhe_s: float


class IdentifyResult(BaseModel):
    results: list[Match]
    fhe_s_total: float
    wall_s: float


# ---- helpers -----------------------------------------------------------------------------------
def _b64(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as err:
        raise HTTPException(400, f"{what} is not valid base64") from err


def _require_type(request: Request, expected: str) -> None:
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != expected:
        raise HTTPException(415, f"expected Content-Type {expected}, got {kind or 'none'}")


def _declared_length(request: Request, limit: int) -> None:
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise HTTPException(400, "bad Content-Length")
        if int(declared) > limit:
            raise HTTPException(413, f"body of {declared} bytes exceeds the limit of {limit}")


async def _json_body(request: Request, model: type[BaseModel]) -> BaseModel:
    _require_type(request, "application/json")
    _declared_length(request, MAX_JSON_BYTES)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_JSON_BYTES:
            raise HTTPException(413, f"body exceeds the limit of {MAX_JSON_BYTES} bytes")
        chunks.append(chunk)
    try:
        return model.model_validate_json(b"".join(chunks))
    except ValidationError as err:
        raise HTTPException(422, err.errors(include_url=False, include_context=False, include_input=False)) from err


def _body_schema(model: type[BaseModel]) -> dict:
    """OpenAPI description of a JSON body we read ourselves (to enforce limits while reading)."""
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": model.model_json_schema()}}}}


class _Keys:
    """Parsed evaluation keys by key id, least recently used dropped first."""

    def __init__(self, size: int) -> None:
        self._items: OrderedDict[str, EvaluationKeys] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def get(self, key_id: str) -> EvaluationKeys | None:
        with self._lock:
            if key_id in self._items:
                self._items.move_to_end(key_id)
                return self._items[key_id]
        return None

    def put(self, key_id: str, keys: EvaluationKeys) -> None:
        with self._lock:
            self._items[key_id] = keys
            self._items.move_to_end(key_id)
            while len(self._items) > self._size:
                self._items.popitem(last=False)

    def drop(self, key_id: str) -> None:
        with self._lock:
            self._items.pop(key_id, None)


# ---- the app ----------------------------------------------------------------------------------
def create_app(data_dir: str | Path, points: tuple[str, ...] = POINTS, workers: int | None = None) -> FastAPI:
    """The API over a data directory. `workers`: FHE runs at once (default: one per core)."""
    store = Store(data_dir)
    servers: dict[str, FHEServer] = {}
    for point in points:
        try:
            servers[point] = FHEServer(point)
        except ArtifactError as err:
            log.warning("point %s not served: %s", point, err)
    if not servers:
        raise ArtifactError("no FHE head point could be loaded")
    parsed = _Keys(KEY_CACHE_SIZE)
    pool = ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1, thread_name_prefix="fhe")

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        pool.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(
        lifespan=lifespan,
        title="privface verification server",
        version=API_VERSION,
        description="Encrypted face verification: the server runs a TFHE circuit on two encrypted "
        "embeddings and returns an encrypted bit. It never sees a face, an embedding, a score or an answer.",
    )
    app.state.store = store
    app.state.pool = pool

    @app.exception_handler(NotFoundError)
    async def _not_found(_: Request, err: NotFoundError) -> JSONResponse:
        return JSONResponse({"detail": str(err.args[0])}, status_code=404)

    @app.exception_handler(ConflictError)
    async def _conflict(_: Request, err: ConflictError) -> JSONResponse:
        return JSONResponse({"detail": str(err)}, status_code=409)

    @app.exception_handler(CiphertextError)
    @app.exception_handler(EvaluationKeyError)
    async def _bad_ciphertext(_: Request, err: ValueError) -> JSONResponse:
        return JSONResponse({"detail": str(err)}, status_code=400)

    def point_of(key_id: str) -> FHEServer:
        """The circuit these keys were uploaded for (no key parsing: enrolment only checks framing)."""
        record = store.key(key_id)
        server = servers.get(record.point)
        if server is None or server.meta["circuit_id"] != record.circuit_id:
            raise HTTPException(410, "these keys belong to a circuit this server no longer serves: upload new keys")
        return server

    def server_for(key_id: str) -> tuple[FHEServer, EvaluationKeys]:
        server = point_of(key_id)
        keys = parsed.get(key_id)
        if keys is None:
            keys = server.load_evaluation_keys(store.key_path(key_id).read_bytes())
            parsed.put(key_id, keys)
        return server, keys

    def run(server: FHEServer, template: bytes, probe: bytes, keys: EvaluationKeys) -> tuple[str, float]:
        # FHEServer keeps its last time on the instance; measure here to stay correct across threads.
        start = time.perf_counter()
        result = server.run(template, probe, keys)
        return base64.b64encode(result).decode(), time.perf_counter() - start

    # ---- service info ----
    @app.get("/health", tags=["service"])
    def health() -> dict:
        return {"status": "ok", "points": sorted(servers)}

    @app.get("/version", tags=["service"])
    def version() -> dict:
        return {
            "api": API_VERSION,
            "concrete_python": concrete_version,
            "points": {
                name: {k: s.meta[k] for k in ("circuit_id", "dims", "n_bits", "programmable_bootstrap_count")}
                for name, s in servers.items()
            },
        }

    # ---- evaluation keys ----
    @app.post(
        "/v1/keys",
        status_code=201,
        tags=["keys"],
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
            }
        },
    )
    async def upload_keys(request: Request, point: Annotated[str, Query()] = "accurate") -> dict:
        """Upload serialized evaluation keys (streamed; once per client). Returns their key id."""
        if point not in servers:
            raise HTTPException(404, f"unknown point {point!r}; served: {sorted(servers)}")
        _require_type(request, "application/octet-stream")
        _declared_length(request, MAX_KEY_BYTES)
        part = store.partial_key_path()
        digest, size = hashlib.sha256(), 0
        try:
            with part.open("wb") as out:
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > MAX_KEY_BYTES:
                        raise HTTPException(413, f"evaluation keys exceed the limit of {MAX_KEY_BYTES} bytes")
                    digest.update(chunk)
                    out.write(chunk)
            if size == 0:
                raise HTTPException(400, "empty body: expected serialized evaluation keys")
            key_id = digest.hexdigest()[:KEY_ID_CHARS]
            server = servers[point]
            keys = await run_in_threadpool(server.load_evaluation_keys, part.read_bytes())
            record = store.add_key(part, key_id, point, server.meta["circuit_id"])
            parsed.put(key_id, keys)
            return record.to_dict()
        except ClientDisconnect:
            log.info("client went away during a key upload; partial upload removed")
            raise HTTPException(400, "upload interrupted") from None
        finally:
            part.unlink(missing_ok=True)

    @app.get("/v1/keys/{key_id}", tags=["keys"])
    def key_info(key_id: str) -> dict:
        return store.key(key_id).to_dict()

    @app.delete("/v1/keys/{key_id}", status_code=204, tags=["keys"])
    def delete_key(key_id: str) -> Response:
        """Forget these keys and every template stored under them."""
        store.delete_key(key_id)
        parsed.drop(key_id)
        return Response(status_code=204)

    # ---- 1:1 verification of two fresh ciphertexts ----
    @app.post("/v1/verify", tags=["verify"], response_model=EncryptedResult, openapi_extra=_body_schema(VerifyRequest))
    async def verify(request: Request) -> EncryptedResult:
        """Run the head on two ciphertexts sent now; returns the encrypted bit."""
        body = await _json_body(request, VerifyRequest)
        template, probe = _b64(body.template, "template"), _b64(body.probe, "probe")

        def work() -> tuple[str, float]:
            server, keys = server_for(body.key_id)
            return pool.submit(run, server, template, probe, keys).result()

        result, fhe_s = await run_in_threadpool(work)
        return EncryptedResult(result=result, fhe_s=fhe_s)

    # ---- templates ----
    @app.post(
        "/v1/keys/{key_id}/templates", status_code=201, tags=["templates"], openapi_extra=_body_schema(EnrolRequest)
    )
    async def enrol(key_id: str, request: Request) -> dict:
        """Store an encrypted template under a name (checked to be a ciphertext of this circuit)."""
        body = await _json_body(request, EnrolRequest)
        if not NAME_PATTERN.match(body.name):
            raise HTTPException(422, "name: 1-100 letters, digits, spaces or . ' @ - _, starting with a letter/digit")
        ciphertext = _b64(body.ciphertext, "ciphertext")
        point_of(key_id).parse_ciphertext(ciphertext, "template ciphertext")
        return store.add_template(key_id, body.name, ciphertext, body.replace).to_dict()

    @app.get("/v1/keys/{key_id}/templates", tags=["templates"])
    def list_templates(key_id: str) -> list[dict]:
        return [t.to_dict() for t in store.templates(key_id)]

    @app.delete("/v1/keys/{key_id}/templates/{name}", status_code=204, tags=["templates"])
    def delete_template(key_id: str, name: str) -> Response:
        store.delete_template(key_id, name)
        return Response(status_code=204)

    @app.post(
        "/v1/keys/{key_id}/templates/{name}/verify",
        tags=["verify"],
        response_model=EncryptedResult,
        openapi_extra=_body_schema(ProbeRequest),
    )
    async def verify_template(key_id: str, name: str, request: Request) -> EncryptedResult:
        """1:1 against a stored template."""
        body = await _json_body(request, ProbeRequest)
        probe = _b64(body.probe, "probe")

        def work() -> tuple[str, float]:
            server, keys = server_for(key_id)
            template = store.template(key_id, name)
            return pool.submit(run, server, template, probe, keys).result()

        result, fhe_s = await run_in_threadpool(work)
        return EncryptedResult(result=result, fhe_s=fhe_s)

    @app.post(
        "/v1/keys/{key_id}/identify",
        tags=["verify"],
        response_model=IdentifyResult,
        openapi_extra=_body_schema(ProbeRequest),
    )
    async def identify(key_id: str, request: Request) -> IdentifyResult:
        """1:N: one encrypted bit per stored template of this key, run in parallel over the cores."""
        body = await _json_body(request, ProbeRequest)
        probe = _b64(body.probe, "probe")

        def work() -> IdentifyResult:
            server, keys = server_for(key_id)
            server.parse_ciphertext(probe, "probe ciphertext")
            start = time.perf_counter()
            templates = store.all_templates(key_id)
            futures = [(name, pool.submit(run, server, blob, probe, keys)) for name, blob in templates]
            matches = [Match(name=name, result=f.result()[0], fhe_s=f.result()[1]) for name, f in futures]
            return IdentifyResult(
                results=matches, fhe_s_total=sum(m.fhe_s for m in matches), wall_s=time.perf_counter() - start
            )

        return await run_in_threadpool(work)

    return app
