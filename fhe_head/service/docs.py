"""The service's API pages with no network: Swagger UI and ReDoc from files a PyPI package ships.

FastAPI's own /docs and /redoc load their JavaScript and CSS from a CDN, so offline they render
blank. `install_offline_docs(app)` replaces them with pages whose assets come from the
`fastapi-offline` wheel (its static files only; the pages are built here with FastAPI's helpers),
makes `/` point to /docs, and documents the request signatures in the OpenAPI description (its
security schemes: the headers each signed endpoint needs, and how the client library computes them).
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files

from fastapi import FastAPI, Request, Response
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

from privface_core import auth

ASSETS_URL = "/docs-assets"
ASSETS = ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js", "favicon.png")
_REPLACED = ("/docs", "/docs/oauth2-redirect", "/redoc", "/")
# The pages may load nothing from elsewhere (ReDoc, for one, fetches its logo from a CDN otherwise).
CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' blob:; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; font-src 'self' data:; worker-src 'self' blob:; connect-src 'self'"
)


# ReDoc's sidebar shows Redocly's logo from their CDN (blocked by the CSP: a console error, a broken image);
# its script is served with that image replaced by an empty one.
REDOC_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"
NO_IMAGE = "data:image/svg+xml,%3Csvg%20xmlns=%27http://www.w3.org/2000/svg%27/%3E"


SIGNATURE_TEXT = f"""
**Signed requests.** Every `/v1` request on an owner's data carries an Ed25519 signature of the key owner
(made with the FHE keys; the client library `privface` signs for you: `privface.VerificationClient`, or
`privface_core.auth.Signer.headers`). The signed message is these lines joined by `\\n`:
`{auth.SIGNED.decode()}`, the server's id (`server_id` from `/version`), the method, the path, the query string,
the key id (on `POST /v1/keys`: the base64 public key instead), the Unix time, the nonce, and the hex SHA-256
of the body. Headers: `{auth.HEADER_KEY}` (key id) or `{auth.HEADER_PUBLIC_KEY}` (key upload),
`{auth.HEADER_AUDIENCE}` (the server id), `{auth.HEADER_TIME}` (within {auth.WINDOW_S} s of the server's
clock), `{auth.HEADER_NONCE}` ({auth.NONCE_CHARS} hex characters, used once), `{auth.HEADER_BODY_SHA256}` (the
signed body hash, hex: the server checks the signature before it reads the body, then that the body has that
hash) and `{auth.HEADER_SIGNATURE}` (base64). "Try it out" cannot compute them: use the client library.
"""
SIGNED_HEADERS = {
    auth.HEADER_KEY: "the key id (from POST /v1/keys)",
    auth.HEADER_AUDIENCE: "the server's id (server_id from /version)",
    auth.HEADER_TIME: "Unix time of signing",
    auth.HEADER_NONCE: f"{auth.NONCE_CHARS} hex characters, never reused",
    auth.HEADER_BODY_SHA256: "hex SHA-256 of the body, as signed",
    auth.HEADER_SIGNATURE: "base64 Ed25519 signature of the message described above",
}


def document_signatures(app: FastAPI) -> None:
    """The OpenAPI description (what /docs and /redoc show) names the signature headers of every /v1 endpoint
    as security schemes and explains how they are made."""
    build = app.openapi

    def openapi() -> dict:
        if app.openapi_schema:
            return app.openapi_schema
        schema = build()
        schema["info"]["description"] = schema["info"].get("description", "") + "\n" + SIGNATURE_TEXT
        upload_headers = {**SIGNED_HEADERS, auth.HEADER_PUBLIC_KEY: "base64 Ed25519 public key (key upload)"}
        del upload_headers[auth.HEADER_KEY]
        schemes = schema.setdefault("components", {}).setdefault("securitySchemes", {})
        for header, text in {**SIGNED_HEADERS, **upload_headers}.items():
            schemes[header] = {"type": "apiKey", "in": "header", "name": header, "description": text}
        for path, operations in schema.get("paths", {}).items():
            if not path.startswith("/v1/"):
                continue
            for operation in operations.values():
                headers = upload_headers if path == "/v1/keys" else SIGNED_HEADERS
                operation["security"] = [{header: [] for header in headers}]
        app.openapi_schema = schema
        return schema

    app.openapi = openapi


def assets_dir() -> str:
    """The folder of the packaged Swagger UI and ReDoc files."""
    return str(files("fastapi_offline") / "static")


@cache
def redoc_script() -> bytes:
    """ReDoc's standalone script, loading nothing from elsewhere."""
    return (
        (files("fastapi_offline") / "static" / "redoc.standalone.js")
        .read_bytes()
        .replace(REDOC_LOGO.encode(), NO_IMAGE.encode())
    )


def _local_only(page: HTMLResponse) -> HTMLResponse:
    page.headers["content-security-policy"] = CSP
    return page


def install_offline_docs(app: FastAPI) -> None:
    """Serve /docs (Swagger UI), /redoc and their assets locally; `/` redirects to /docs; the signatures are
    documented in the OpenAPI description."""
    document_signatures(app)
    openapi_url = app.openapi_url or "/openapi.json"
    title = app.title
    # FastAPI registered its CDN-based pages when the app was built: drop them, keep everything else.
    app.router.routes = [r for r in app.router.routes if getattr(r, "path", None) not in _REPLACED]

    @app.get(f"{ASSETS_URL}/redoc.standalone.js", include_in_schema=False)  # before the folder's mount: it wins
    def redoc_js() -> Response:
        return Response(redoc_script(), media_type="text/javascript")

    app.mount(ASSETS_URL, StaticFiles(directory=assets_dir()), name="docs-assets")

    def prefix(request: Request) -> str:
        return request.scope.get("root_path", "").rstrip("/")

    @app.get("/", include_in_schema=False)
    def root(request: Request) -> RedirectResponse:
        return RedirectResponse(prefix(request) + "/docs")

    @app.get("/docs", include_in_schema=False)
    def swagger(request: Request) -> HTMLResponse:
        base, assets = prefix(request), prefix(request) + ASSETS_URL
        return _local_only(
            get_swagger_ui_html(
                openapi_url=base + openapi_url,
                title=f"{title} - API",
                swagger_js_url=f"{assets}/swagger-ui-bundle.js",
                swagger_css_url=f"{assets}/swagger-ui.css",
                swagger_favicon_url=f"{assets}/favicon.png",
                oauth2_redirect_url=base + "/docs/oauth2-redirect",
            )
        )

    @app.get("/docs/oauth2-redirect", include_in_schema=False)
    def oauth2_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    def redoc(request: Request) -> HTMLResponse:
        assets = prefix(request) + ASSETS_URL
        return _local_only(
            get_redoc_html(
                openapi_url=prefix(request) + openapi_url,
                title=f"{title} - API reference",
                redoc_js_url=f"{assets}/redoc.standalone.js",
                redoc_favicon_url=f"{assets}/favicon.png",
                with_google_fonts=False,
            )
        )
