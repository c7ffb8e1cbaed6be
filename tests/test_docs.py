"""The service's /docs and /redoc with no network: every asset the pages name is served locally."""

from __future__ import annotations

import re

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from fhe_head.service.docs import ASSETS, ASSETS_URL, install_offline_docs


@pytest.fixture(scope="module")
def client() -> TestClient:
    app = FastAPI(title="privface verification server")

    @app.get("/health")
    def health() -> dict:
        return {"ok": True}

    install_offline_docs(app)
    return TestClient(app)


def _references(html: str) -> list[str]:
    """Every URL a page loads or links to: src/href attributes and the url strings of its inline script."""
    attributes = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", html)
    in_script = re.findall(r"""(?:url|openapi_url)\s*:\s*["']([^"']+)["']""", html)
    return attributes + in_script


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_page_names_only_local_assets_and_they_load(client: TestClient, page: str) -> None:
    response = client.get(page)
    assert response.status_code == 200 and "text/html" in response.headers["content-type"]
    assert "default-src 'self'" in response.headers["content-security-policy"]
    references = _references(response.text)
    assert references, "found no asset references: the page layout changed"
    assert "http" not in response.text.replace("http-equiv", ""), "the page names a remote URL"
    for url in references:
        assert url.startswith("/"), url
        loaded = client.get(url)
        assert loaded.status_code == 200, url
        if url.startswith(ASSETS_URL) and url.endswith(".js"):
            assert len(loaded.content) > 100_000 and "javascript" in loaded.headers["content-type"], url


def test_the_scripts_load_nothing_from_elsewhere(client: TestClient) -> None:
    """ReDoc's script showed Redocly's logo from their CDN (refused by the CSP: a console error, a broken image)."""
    for name in ("redoc.standalone.js", "swagger-ui-bundle.js"):
        script = client.get(f"{ASSETS_URL}/{name}").text
        assert not re.findall(r"""src\s*:\s*["']https?://""", script), name


def test_every_packaged_asset_is_served(client: TestClient) -> None:
    for name in ASSETS:
        assert client.get(f"{ASSETS_URL}/{name}").status_code == 200, name


def test_root_points_to_docs_and_the_api_is_untouched(client: TestClient) -> None:
    response = client.get("/", follow_redirects=False)
    assert response.status_code in (302, 307) and response.headers["location"] == "/docs"
    assert client.get("/health").json() == {"ok": True}
    paths = client.get("/openapi.json").json()["paths"]
    assert list(paths) == ["/health"]  # the doc pages are not part of the API description


def test_the_real_service_gets_offline_docs(tmp_path) -> None:
    from fhe_head.artifacts import ARTIFACTS_ROOT
    from fhe_head.service.app import create_app

    if not (ARTIFACTS_ROOT / "fast" / "meta.json").is_file():
        pytest.skip("no shipped head")
    app = create_app(tmp_path, points=("fast",), workers=1)  # create_app installs the offline pages itself
    with TestClient(app) as real:
        html = real.get("/docs").text
        assert f"{ASSETS_URL}/swagger-ui-bundle.js" in html and "cdn" not in html
        assert real.get(f"{ASSETS_URL}/swagger-ui.css").status_code == 200
        assert real.get("/", follow_redirects=False).headers["location"] == "/docs"
        schema = real.get("/openapi.json").json()
    assert "/v1/verify" in schema["paths"]
    # Every answer with a body is typed (/docs showed "{}" for most), and every /v1 endpoint names the
    # signature headers it needs, explained in the description /docs shows.
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            for status, answer in operation["responses"].items():
                if status.startswith("2") and status != "204":
                    shown = answer["content"]["application/json"]["schema"]
                    assert "$ref" in shown or "$ref" in shown.get("items", {}), (method, path, shown)
            if path.startswith("/v1/"):
                [required] = operation["security"]
                assert "x-privface-signature" in required and "x-privface-time" in required, (method, path)
    assert "x-privface-signature" in schema["components"]["securitySchemes"]
    assert "privface-sig-v2" in schema["info"]["description"]


@pytest.fixture
def served_docs():
    """The test app on a real port (uvicorn in a thread), for a browser."""
    import socket
    import threading
    import time

    import uvicorn

    app = FastAPI(title="privface verification server")

    @app.get("/health", tags=["service"])
    def health() -> dict:
        return {"ok": True}

    install_offline_docs(app)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.1)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.mark.browser
def test_docs_render_in_a_browser_with_no_request_leaving_the_server(served_docs: str) -> None:
    import shutil

    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright not installed")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        pytest.skip("no Chromium binary: apt-get install chromium")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page()
        loaded: list[str] = []  # requests that got an answer (a CSP-blocked one fails and is not listed)
        page.on("requestfinished", lambda request: loaded.append(request.url))
        page.goto(served_docs + "/")  # `/` redirects to /docs
        page.locator(".swagger-ui .opblock").first.wait_for(timeout=60_000)  # Swagger UI drew the API
        assert "/health" in page.locator(".swagger-ui").inner_text()
        page.goto(served_docs + "/redoc")
        page.get_by_role("heading", name="Health").first.wait_for(timeout=60_000)  # ReDoc drew the operation
        browser.close()
    local = (served_docs, "data:", f"blob:{served_docs}")
    outside = [url for url in loaded if not url.startswith(local)]
    assert not outside, f"requests left the server: {outside}"
    assert any(url.endswith("/docs-assets/redoc.standalone.js") for url in loaded)
