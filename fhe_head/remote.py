"""Client of the verification server: photo -> encoder -> encrypt -> HTTP -> decrypt.

The secret key stays in `key_dir` (mode 0600) and in this process; only evaluation keys (public)
and ciphertexts are sent. The server's answers are encrypted bits that only this client can read.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import httpx
import numpy as np

from fhe_head.artifacts import DEFAULT_POINT, key_id_of
from fhe_head.client import FHEClient

DEFAULT_KEY_DIR = Path("~/.privface/keys")
UPLOAD_CHUNK = 1 << 20


class ServiceError(RuntimeError):
    """The server refused a request (its message included) or could not be reached."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Verdict:
    """A decrypted answer and what it cost."""

    same: bool
    fhe_s: float  # server time in the FHE circuit
    total_s: float  # this call end to end (encoding, encryption, network, decryption)
    details: dict = field(default_factory=dict)


ProgressFn = Callable[[int, int], None]


class VerificationClient:
    """`VerificationClient(url).compare("a.jpg", "b.jpg").same` -- encrypted end to end.

    `encoder` is a `client_encoder.FaceEncoder` (created on first use); photos may be paths,
    bytes or arrays, and embeddings (128 floats) are accepted wherever a photo is.
    """

    def __init__(
        self,
        url: str,
        point: str = DEFAULT_POINT,
        key_dir: str | Path | None = DEFAULT_KEY_DIR,
        encoder=None,
        timeout: float = 120.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.point = point
        self._encoder = encoder
        self.fhe = FHEClient(point, key_dir=key_dir)
        self.http = httpx.Client(base_url=self.url, timeout=timeout, transport=transport)
        self.key_id: str | None = None
        self.timings: dict[str, float] = {}

    # ---- plumbing ----------------------------------------------------------------------------
    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> VerificationClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _request(self, method: str, path: str, **kwargs) -> httpx.Response:
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.HTTPError as err:
            raise ServiceError(f"cannot reach the server at {self.url}: {err}") from err
        if response.status_code >= 400:
            try:
                detail = response.json().get("detail", response.text)
            except ValueError:
                detail = response.text
            raise ServiceError(f"server said {response.status_code}: {detail}", response.status_code)
        return response

    @property
    def encoder(self):
        if self._encoder is None:
            from client_encoder.encoder import FaceEncoder

            self._encoder = FaceEncoder()
        return self._encoder

    def embedding(self, photo) -> np.ndarray:
        array = np.asarray(photo) if not isinstance(photo, (str, Path, bytes)) else None
        if array is not None and array.shape == (128,):
            return array.astype(np.float32)
        return self.encoder.embed(photo)

    def encrypt(self, photo) -> bytes:
        start = time.perf_counter()
        ciphertext = self.fhe.encrypt(self.embedding(photo))
        self.timings["encode_encrypt_s"] = time.perf_counter() - start
        return ciphertext

    def _b64(self, data: bytes) -> str:
        return base64.b64encode(data).decode()

    # ---- keys --------------------------------------------------------------------------------
    def connect(self, progress: ProgressFn | None = None) -> str:
        """Generate (or load) keys and make sure the server holds the evaluation keys. Returns the key id."""
        if self.key_id:
            return self.key_id
        start = time.perf_counter()
        self.fhe.generate_keys()
        self.timings["keygen_s"] = time.perf_counter() - start
        keys = self.fhe.evaluation_keys()
        key_id = key_id_of(keys)
        if not self._server_has(key_id):
            start = time.perf_counter()
            record = self._upload(keys, progress).json()
            self.timings["key_upload_s"] = time.perf_counter() - start
            if record["key_id"] != key_id:
                raise ServiceError("the server computed another key id for our keys")
        self.key_id = key_id
        return key_id

    def _server_has(self, key_id: str) -> bool:
        try:
            self._request("GET", f"/v1/keys/{key_id}")
        except ServiceError as err:
            if err.status == 404:
                return False
            raise
        return True

    def _upload(self, keys: bytes, progress: ProgressFn | None) -> httpx.Response:
        def chunks() -> Iterator[bytes]:
            for offset in range(0, len(keys), UPLOAD_CHUNK):
                yield keys[offset : offset + UPLOAD_CHUNK]
                if progress:
                    progress(min(offset + UPLOAD_CHUNK, len(keys)), len(keys))

        return self._request(
            "POST",
            "/v1/keys",
            params={"point": self.point},
            content=chunks(),
            headers={"content-type": "application/octet-stream", "content-length": str(len(keys))},
        )

    def forget_me(self) -> None:
        """Delete our evaluation keys and all our templates from the server."""
        self._request("DELETE", f"/v1/keys/{self.connect()}")
        self.key_id = None

    # ---- verification ------------------------------------------------------------------------
    def _verdict(self, body: dict, start: float) -> Verdict:
        same = self.fhe.decrypt(base64.b64decode(body["result"]))
        return Verdict(same, body["fhe_s"], time.perf_counter() - start, {"result_bytes": len(body["result"]) * 3 // 4})

    def send_pair(self, template: bytes, probe: bytes) -> tuple[bytes, float]:
        """Two ciphertexts to the server; returns the encrypted bit and the server's FHE time."""
        body = {"key_id": self.connect(), "template": self._b64(template), "probe": self._b64(probe)}
        answer = self._request("POST", "/v1/verify", json=body).json()
        return base64.b64decode(answer["result"]), float(answer["fhe_s"])

    def compare(self, photo_a, photo_b) -> Verdict:
        """Are these two photos of the same person? Both encrypted here, compared on the server."""
        self.connect()
        start = time.perf_counter()
        result, fhe_s = self.send_pair(self.encrypt(photo_a), self.encrypt(photo_b))
        return Verdict(self.fhe.decrypt(result), fhe_s, time.perf_counter() - start, {"result_bytes": len(result)})

    def enrol(self, photo, name: str, replace: bool = False) -> dict:
        """Store the encrypted embedding of `photo` on the server under `name`."""
        key_id = self.connect()
        body = {"name": name, "ciphertext": self._b64(self.encrypt(photo)), "replace": replace}
        return self._request("POST", f"/v1/keys/{key_id}/templates", json=body).json()

    def verify(self, photo, name: str) -> Verdict:
        """Is `photo` the person enrolled as `name`?"""
        key_id = self.connect()
        start = time.perf_counter()
        body = {"probe": self._b64(self.encrypt(photo))}
        path = f"/v1/keys/{key_id}/templates/{quote(name, safe='')}/verify"
        return self._verdict(self._request("POST", path, json=body).json(), start)

    def identify(self, photo) -> list[tuple[str, bool]]:
        """Every enrolled name with its decrypted bit (True = this photo matches it)."""
        key_id = self.connect()
        start = time.perf_counter()
        body = self._request("POST", f"/v1/keys/{key_id}/identify", json={"probe": self._b64(self.encrypt(photo))})
        results = body.json()
        self.timings["identify_s"] = time.perf_counter() - start
        self.timings["identify_server_wall_s"] = results["wall_s"]
        return [(m["name"], self.fhe.decrypt(base64.b64decode(m["result"]))) for m in results["results"]]

    def templates(self) -> list[dict]:
        return self._request("GET", f"/v1/keys/{self.connect()}/templates").json()

    def delete(self, name: str) -> None:
        self._request("DELETE", f"/v1/keys/{self.connect()}/templates/{quote(name, safe='')}")
