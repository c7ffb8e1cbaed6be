"""The verification server's application: how errors become responses, and the app over its state
(`state.py`) and its routes (`routes.py`).

What the server handles: evaluation keys (public), owners' public signing keys, ciphertexts of
quantised embeddings and encrypted result bits. It imports nothing that can decrypt, stores no
secret, and cannot tell what any answer is. Every input is checked against its circuit's exact
encoding before anything parses it, every request on an owner's data is signed by that owner,
and every resource has a limit that is named when it is reached.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from fhe_head.formats import CiphertextFormatError, KeyFormatError
from fhe_head.service.engine import KeysBusyError
from fhe_head.service.state import ClientGone, ServiceState, UploadStoppedError
from fhe_head.service.store import StorageFullError
from privface_core.errors import CiphertextError, EvaluationKeyError, ServiceError
from privface_core.protocol import API_VERSION, CODED_ERRORS

log = logging.getLogger("fhe_head.service")


def _error(status: int, detail: str, code: str | None = None) -> JSONResponse:
    """An error answer (`privface_core.protocol.ErrorBody`): the message, and the code of the errors a caller
    acts on."""
    body = {"detail": detail} if code is None else {"detail": detail, "code": code}
    return JSONResponse(body, status_code=status)


async def _refused(_: Request, err: Exception) -> JSONResponse:
    """A request refused on purpose (unknown key, quota, bad signature...): its status, message and code."""
    response = _error(err.status, str(err), err.code)
    if getattr(err, "retry_after_s", None):
        response.headers["retry-after"] = str(err.retry_after_s)
    return response


async def _input_error(_: Request, err: Exception) -> JSONResponse:
    # Our own format checks name the problem; anything concrete said stays in the server log.
    if isinstance(err, CiphertextFormatError | KeyFormatError):
        return _error(400, str(err))
    log.info("input refused by the FHE runtime: %s", err)
    what = "evaluation keys" if isinstance(err, EvaluationKeyError) else "ciphertext"
    return _error(400, f"the {what} could not be read")


async def _unexpected(_: Request, err: Exception) -> JSONResponse:
    log.exception("internal error", exc_info=err)
    return _error(500, "internal server error")


async def _http_error(_: Request, err: StarletteHTTPException) -> JSONResponse:
    return JSONResponse({"detail": err.detail}, status_code=err.status_code, headers=err.headers)


async def _validation_error(_: Request, err: RequestValidationError) -> JSONResponse:
    fields = sorted({".".join(str(p) for p in e.get("loc", ())[1:]) or "body" for e in err.errors()})
    return _error(422, f"invalid request fields: {', '.join(fields)}")


async def _service_error(_: Request, err: Exception) -> JSONResponse:
    """The FHE engine could not do the work (e.g. the Ray cluster): its status (503), never a partial answer."""
    log.warning("engine failure: %s", err)
    return _error(getattr(err, "status", None) or 503, str(err))


def _register_errors(app: FastAPI) -> None:
    for kind in [*CODED_ERRORS.values(), StorageFullError, KeysBusyError, UploadStoppedError]:
        app.add_exception_handler(kind, _refused)
    app.add_exception_handler(CiphertextError, _input_error)
    app.add_exception_handler(EvaluationKeyError, _input_error)
    app.add_exception_handler(ServiceError, _service_error)
    app.add_exception_handler(ClientGone, lambda _r, _e: _error(499, "client closed the request"))
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unexpected)


def create_app(data_dir: str | Path, **options: Any) -> FastAPI:
    """The API over a data directory; `options` are `ServiceState`'s: `points`, `limits`, `workers`
    (FHE runs at once on this machine, default one per core), `engine`, `ray_address` (run them on
    that Ray cluster instead; nothing falls back silently)."""
    from fhe_head.service.docs import install_offline_docs
    from fhe_head.service.routes import keys, service, templates, verification

    state = ServiceState(data_dir, **options)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        state.close()

    app = FastAPI(
        lifespan=lifespan,
        title="privface verification server",
        version=API_VERSION,
        description="Encrypted face verification: the server runs a TFHE circuit on two encrypted "
        "embeddings and returns an encrypted bit. It never sees a face, an embedding, a score or an answer. "
        "Requests on an owner's data carry the owner's Ed25519 signature (see privface_core/auth.py).",
    )
    app.state.service = state
    _register_errors(app)
    for router in (service, keys, verification, templates):
        app.include_router(router)
    install_offline_docs(app)
    return app
