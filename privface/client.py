"""The user's client of the verification server: photo -> encoder -> encrypt -> HTTP -> decrypt.

The secret key stays in `key_dir` (mode 0600) and in this process; only evaluation keys (public)
and ciphertexts are sent. The server's answers are encrypted bits that only this client can read.
Every request on our data is signed with an Ed25519 key kept beside the FHE keys (privface_core/auth.py):
the server lets nobody else read, write or run anything under our key id.

Each step is a method whose result carries its own timing, so an app can show them one by one:
`connect()` (keys), `encode(photo)`, `encrypt(...)`, `send_pair(...)`, `decrypt(...)`; `compare`
and `verify` chain them into one `CompareResult`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import numpy as np
from pydantic import TypeAdapter, ValidationError

from fhe_head.artifacts import DEFAULT_POINT, HEAD_FILE, key_file_in, point_dir, read_meta
from fhe_head.head import HeadParams, default_level
from privface.display import one_line, public_url, server_url_problem
from privface.result import CompareResult
from privface_core.auth import Signer, key_id_for
from privface_core.errors import ArtifactError, InputError, KeysGoneError, NotPrivfaceServerError, ServiceError
from privface_core.private_files import write_private
from privface_core.protocol import (
    EncryptedResult,
    ErrorBody,
    IdentifyResult,
    KeyInfo,
    TemplateInfo,
    VersionInfo,
    error_from,
)
from privface_core.resources import DEFAULT_KEY_DIR

if TYPE_CHECKING:
    from fhe_head.client import FHEClient

__all__ = ["Encrypted", "ServerAnswer", "VerificationClient"]


UPLOAD_CHUNK = 1 << 20


@dataclass
class Encrypted:
    """One embedding, quantised and encrypted on its own (a template or a probe)."""

    ciphertext: bytes
    encode_s: float  # photo -> embedding (0 when an embedding was given)
    encrypt_s: float
    encoding: object | None = None  # the client_encoder.FaceEncoding, when made from a photo
    level: str | None = None  # the security level a probe asks for; None: a template (it serves every level)


@dataclass
class ServerAnswer:
    """The server's encrypted bit and what it cost."""

    result: bytes
    server_fhe_s: float  # time in the FHE circuit, measured by the server
    round_trip_s: float  # HTTP request -> answer, measured here


ProgressFn = Callable[[int, int], None]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _stamp(path: Path) -> list[int]:
    status = path.stat()
    return [status.st_size, status.st_mtime_ns]


def _saved_key_id(key_file: Path) -> str | None:
    """The key id cached beside `key_file` (`<circuit>.keyid`), if the key and signing-key files are still the
    ones it was computed from; else None."""
    try:
        saved = json.loads(key_file.with_suffix(".keyid").read_text())
        if saved["keys"] == _stamp(key_file) and saved["sign"] == _stamp(key_file.with_suffix(".sign")):
            return str(saved["key_id"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return None


def _save_key_id(key_file: Path, key_id: str) -> None:
    """Cache the key id beside the keys (mode 0600): it hashes the evaluation keys, which only the FHE runtime
    can load, and list, delete and forget need nothing else from it."""
    if _saved_key_id(key_file) != key_id:
        record = {"key_id": key_id, "keys": _stamp(key_file), "sign": _stamp(key_file.with_suffix(".sign"))}
        write_private(key_file.with_suffix(".keyid"), json.dumps(record).encode())


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
        level: str | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.point = point
        self._encoder = encoder
        # What every command needs of the head, read without the FHE runtime (`fhe` loads it on first use:
        # list, delete and forget never do, when the key id is cached).
        directory = point_dir(point)
        self.meta = read_meta(directory)
        self.head = HeadParams.load(directory / HEAD_FILE)
        self.key_file = key_file_in(key_dir, self.meta)
        self._key_dir = key_dir
        self._fhe: FHEClient | None = None
        self._photos_in_memory: dict[str, int] = {}  # photos per template enrolled by this client object
        # The security level every probe asks for; it travels inside the probe's ciphertext. None = the
        # head's default. Unknown or not offered by this head -> UnknownLevelError.
        self.level = level if level is not None else default_level(self.head.offered)
        self.head.level_index(self.level)
        problem = server_url_problem(self.url)
        try:
            if problem:
                raise httpx.InvalidURL(problem)
            self.http = httpx.Client(base_url=self.url, timeout=timeout, transport=transport)
        except (httpx.InvalidURL, TypeError, ValueError) as err:
            raise ServiceError(f"invalid server URL {public_url(self.url)!r}: {err}") from err
        self._server_checked = False
        self.server_id: str | None = None
        self.key_id: str | None = None
        self.signer: Signer | None = None
        self._keys = b""
        self.timings: dict[str, float] = {}

    @property
    def fhe(self) -> FHEClient:
        """The head's client role (keys, encryption, decryption), made on first use: it loads the FHE runtime."""
        if self._fhe is None:
            from fhe_head.client import FHEClient

            self._fhe = FHEClient(self.point, key_dir=self._key_dir)
        return self._fhe

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
            raise ServiceError(f"cannot reach the server at {public_url(self.url)}: {one_line(err)}") from err
        if not response.is_success:
            try:
                error: ErrorBody | None = ErrorBody.model_validate_json(response.content)
            except ValidationError:
                error = None
            said = one_line(error.detail) if error else "(not a privface server's answer)"
            message = f"server said {response.status_code}: {said}"
            raise error_from(response.status_code, message, error.code if error else None)
        return response

    def _parse(self, response: httpx.Response, shape):
        """The JSON answer validated against `shape` (a pydantic model or type): anything else is a one-line
        ServiceError, never a KeyError deep in the caller."""
        try:
            return TypeAdapter(shape).validate_json(response.content)
        except ValidationError as err:
            raise NotPrivfaceServerError(
                f"the server at {public_url(self.url)} did not answer as a privface server"
            ) from err

    def _check_server(self) -> None:
        """Once per client, before any key is uploaded: the server serves this head point with our circuit
        (a wrong URL would otherwise receive tens of MB of evaluation keys first)."""
        if self._server_checked:
            return
        version = self._parse(self._request("GET", "/version"), VersionInfo)
        if version.server_id is None:
            raise ServiceError(f"the server at {public_url(self.url)} is an older privface server: update it")
        point = version.points.get(self.point)
        if point is None:
            raise ServiceError(f"the server at {public_url(self.url)} does not serve the {self.point} head")
        if point.circuit_id != self.meta["circuit_id"]:
            raise ServiceError(
                f"the server at {public_url(self.url)} runs another {self.point} circuit "
                f"({one_line(point.circuit_id)}, ours {self.meta['circuit_id']}): update this client or the server"
            )
        self.server_id = version.server_id
        self._server_checked = True

    def _sign(self, method: str, path: str, query: str, content: bytes, key_id: str | None) -> dict[str, str]:
        """Signature headers for this server only (its id from /version is in the signed message)."""
        self._check_server()
        return self.signer.headers(
            method, path, query, hashlib.sha256(content).digest(), key_id, audience=self.server_id
        )

    def _signed(self, method: str, path: str, body: dict | None = None) -> httpx.Response:
        """A request signed as the key owner; keys the server evicted or lost are uploaded again, once."""
        for attempt in (0, 1):
            key_id = self.connect()
            content = json.dumps(body).encode() if body is not None else b""
            headers = self._sign(method, path, "", content, key_id)
            if body is not None:
                headers["content-type"] = "application/json"
            try:
                return self._request(method, path, content=content, headers=headers)
            except KeysGoneError:
                if attempt:
                    raise
                self.key_id = None
                self._upload_keys(None)
        raise AssertionError("unreachable")

    @property
    def encoder(self):
        """The face encoder of this head (its meta.json names it): created on first use, or the one given,
        refused if the head was trained on another encoder's embeddings."""
        if self._encoder is None:
            from client_encoder.encoder import FaceEncoder

            self._encoder = FaceEncoder(encoder=self.meta.get("encoder", "dlib"))
        if self._encoder.model_sha256 != self.meta["encoder_onnx_sha256"]:
            raise ArtifactError(
                f"the {self.point} head was trained on the {self.meta.get('encoder', 'dlib')} encoder's "
                f"embeddings, not on those of the encoder given ({self._encoder.encoder})"
            )
        return self._encoder

    def encode(self, photo):
        """The photo's `FaceEncoding` (face found, chip, embedding, timings), on this device."""
        return self.encoder.encode(photo)

    def encrypt(self, photo, level: str | None = None) -> Encrypted:
        """A photo, a `FaceEncoding` or a 128-d embedding, quantised and encrypted on its own: a template
        (level None, it serves every level) or a probe asking for `level`."""
        self._load_keys()  # the keys of key_dir first (else the runtime encrypts under throw-away ones)
        start = time.perf_counter()
        encoding = None
        array = None if isinstance(photo, (str, Path, bytes)) or hasattr(photo, "embedding") else np.asarray(photo)
        if array is not None and array.shape == self.head.mean.shape:
            embedding = array.astype(np.float32)
        else:
            encoding = photo if hasattr(photo, "embedding") else self.encode(photo)
            embedding = encoding.embedding
        encoded = time.perf_counter()
        ciphertext = self.fhe.encrypt(embedding, level)
        encode_s = encoded - start
        if encoding is not None and encoding is photo:  # encoded earlier: its own time
            encode_s = sum(encoding.timings_ms.values()) / 1e3
        return Encrypted(ciphertext, encode_s, time.perf_counter() - encoded, encoding, level)

    def decrypt(self, answer: ServerAnswer | bytes) -> bool:
        """The server's encrypted bit, decrypted with our secret key (True = same person)."""
        return self.fhe.decrypt(answer.result if isinstance(answer, ServerAnswer) else answer)

    @property
    def evaluation_key_bytes(self) -> int:
        """Size of the evaluation keys this client uploads (after `connect`)."""
        return len(self.fhe.evaluation_keys())

    # ---- keys --------------------------------------------------------------------------------
    def connect(self, progress: ProgressFn | None = None) -> str:
        """Generate (or load) keys and make sure the server holds the evaluation keys. Returns the key id."""
        if self.key_id:
            return self.key_id
        self._check_server()
        self._load_keys()
        if not self._server_has(self._key_id()):
            self._upload_keys(progress)
        self.key_id = self._key_id()
        return self.key_id

    def connect_saved(self) -> bool:
        """Connect with the keys saved in `key_dir` if the server still holds them, generating and uploading
        nothing (for list, delete, forget): False when there are no saved keys or the server has none of them.
        With the key id cached beside the keys, the FHE runtime is not loaded."""
        key_file = self.key_file
        if key_file is None or not key_file.is_file():
            return False
        key_id = _saved_key_id(key_file)
        if key_id is None:  # not cached, or the key files changed since: the runtime computes it (and caches it)
            self._load_keys()  # the saved FHE keys and the signing key made with them
            key_id = self._key_id()
        else:
            self.signer = Signer.load_or_create(key_file.with_suffix(".sign"))
        if not self._server_has(key_id):
            return False
        self.key_id = key_id
        return True

    def _load_keys(self) -> None:
        """FHE keys and the signing key made with them (both stay in `key_dir`, mode 0600, with the key id)."""
        if self._keys:
            return
        start = time.perf_counter()
        key_file = self.key_file
        existed = bool(key_file and key_file.is_file())
        self.fhe.generate_keys()
        sign_file = key_file.with_suffix(".sign") if key_file else None
        if sign_file and not existed:  # new FHE keys get a new signing key
            sign_file.unlink(missing_ok=True)
        self.signer = Signer.load_or_create(sign_file)
        self._keys = self.fhe.evaluation_keys()
        if key_file:
            _save_key_id(key_file, self._key_id())
        self.timings["keygen_s"] = time.perf_counter() - start

    def _key_id(self) -> str:
        return key_id_for(self.signer.public_key, hashlib.sha256(self._keys).digest())

    def _server_has(self, key_id: str) -> bool:
        headers = self._sign("GET", "/v1/keys/me", "", b"", key_id)
        try:
            self._request("GET", "/v1/keys/me", headers=headers)
        except KeysGoneError:
            return False
        return True

    def _upload_keys(self, progress: ProgressFn | None) -> None:
        self._load_keys()
        start = time.perf_counter()
        record = self._parse(self._upload(self._keys, progress), KeyInfo)
        self.timings["key_upload_s"] = time.perf_counter() - start
        if record.key_id != self._key_id():
            raise ServiceError("the server computed another key id for our keys")
        self.key_id = record.key_id

    def _upload(self, keys: bytes, progress: ProgressFn | None) -> httpx.Response:
        def chunks() -> Iterator[bytes]:
            for offset in range(0, len(keys), UPLOAD_CHUNK):
                yield keys[offset : offset + UPLOAD_CHUNK]
                if progress:
                    progress(min(offset + UPLOAD_CHUNK, len(keys)), len(keys))

        query = f"point={self.point}"
        headers = self._sign("POST", "/v1/keys", query, keys, None)
        headers.update({"content-type": "application/octet-stream", "content-length": str(len(keys))})
        return self._request("POST", f"/v1/keys?{query}", content=chunks(), headers=headers)

    def forget_me(self) -> None:
        """Delete our evaluation keys, our signing key's registration and all our templates from the server."""
        self._signed("DELETE", "/v1/keys/me")
        for name in self._photo_counts():
            self._record_photos(name, None)
        self.key_id = None

    # ---- verification ------------------------------------------------------------------------
    def _result_bytes(self, text: str) -> bytes:
        try:
            return base64.b64decode(text, validate=True)
        except ValueError as err:
            raise ServiceError(f"the server at {public_url(self.url)} sent a result that is not base64") from err

    def _answer(self, response: httpx.Response, start: float) -> ServerAnswer:
        answer = self._parse(response, EncryptedResult)
        return ServerAnswer(self._result_bytes(answer.result), answer.fhe_s, time.perf_counter() - start)

    def send_pair(self, template: Encrypted | bytes, probe: Encrypted | bytes) -> ServerAnswer:
        """Two ciphertexts to the server; returns its encrypted bit. The level is the probe's: the server
        compares at the *difference* of what the two carry, so a template must carry none and a probe one."""
        if self.head.levels and isinstance(template, Encrypted) and template.level is not None:
            raise InputError("the template was encrypted with a security level: encrypt it as client.encrypt(photo)")
        if self.head.levels and isinstance(probe, Encrypted) and probe.level is None:
            raise InputError(
                "the probe was encrypted without a security level (it would be compared at 'balanced'): "
                "encrypt it as client.encrypt(photo, client.level)"
            )
        template, probe = (c.ciphertext if isinstance(c, Encrypted) else c for c in (template, probe))
        self.connect()
        body = {"template": _b64(template), "probe": _b64(probe)}
        start = time.perf_counter()
        return self._answer(self._signed("POST", "/v1/verify", body), start)

    def _result(
        self, answer: ServerAnswer, start: float, parts: list[Encrypted], name: str | None = None
    ) -> CompareResult:
        decrypt_start = time.perf_counter()
        same = self.decrypt(answer)
        done = time.perf_counter()
        timings = {
            "encode_s": sum(p.encode_s for p in parts),
            "encrypt_s": sum(p.encrypt_s for p in parts),
            "server_fhe_s": answer.server_fhe_s,
            "round_trip_s": answer.round_trip_s,
            "decrypt_s": done - decrypt_start,
            "total_s": done - start,
        }
        sizes = {"result": len(answer.result)}
        sizes.update(zip(("template", "probe")[-len(parts) :], (len(p.ciphertext) for p in parts), strict=True))
        return CompareResult(same, self.point, self.level, timings=timings, sizes=sizes, name=name)

    def compare(self, photo_a, photo_b) -> CompareResult:
        """Are these two photos of the same person? Both encrypted here, compared on the server."""
        self.connect()
        start = time.perf_counter()
        template, probe = self.encrypt(photo_a), self.encrypt(photo_b, self.level)
        return self._result(self.send_pair(template, probe), start, [template, probe])

    def enrol(self, photos, name: str, replace: bool = False, labels: list[str] | None = None) -> dict:
        """Store the encrypted template of a photo, or of a list of 1..10 photos of one person (their
        embeddings combined here, `FaceEncoder.template`; `labels` name them in its refusals, by default
        their paths), on the server under `name`. The answer says how many photos it came from ("photos")."""
        several = isinstance(photos, (list, tuple))
        if several:
            labels = labels or [
                str(p) if isinstance(p, (str, Path)) else f"photo {i + 1}" for i, p in enumerate(photos)
            ]
            encodings = [p if hasattr(p, "embedding") or isinstance(p, np.ndarray) else self.encode(p) for p in photos]
            embeddings = [getattr(e, "embedding", e) for e in encodings]
            template = self.encoder.template(embeddings, labels)
        self.connect()
        ciphertext = self.encrypt(template if several else photos).ciphertext
        body = {"name": name, "ciphertext": _b64(ciphertext), "replace": replace}
        record = self._parse(self._signed("POST", "/v1/templates", body), TemplateInfo).model_dump()
        count = len(photos) if several else 1
        self._record_photos(name, count)
        return {**record, "photos": count}

    # ---- how many photos each template came from (kept here, never sent) ---------------------------
    @property
    def _photos_file(self) -> Path | None:
        return self.key_file.with_suffix(".photos") if self.key_file else None

    def _saved_photo_counts(self) -> dict[str, dict[str, int]]:
        try:
            return json.loads(self._photos_file.read_text())
        except (AttributeError, OSError, ValueError):
            return {}

    def _photo_counts(self) -> dict[str, int]:
        """Photos per template name enrolled from here on this server (the key owner's record: beside the
        keys, and in memory for a client without a key folder)."""
        return {**self._saved_photo_counts().get(self.server_id or "", {}), **self._photos_in_memory}

    def _record_photos(self, name: str, photos: int | None) -> None:
        record = self._saved_photo_counts()
        for counts in (record.setdefault(self.server_id or "", {}), self._photos_in_memory):
            if photos is None:
                counts.pop(name, None)
            else:
                counts[name] = photos
        if self._photos_file is not None:
            write_private(self._photos_file, json.dumps(record).encode())

    def template_photos(self, name: str) -> int | None:
        """How many photos template `name` came from, if this client enrolled it on this server."""
        return self._photo_counts().get(name)

    def level_against(self, name: str | None) -> str | None:
        """The level a probe asks for against template `name`: the several-photo threshold of `self.level`
        unless this client enrolled `name` from one photo (None: every template, as identify compares)."""
        return self.head.level_for(self.level, self.template_photos(name) if name is not None else None)

    def verify(self, photo, name: str) -> CompareResult:
        """Is `photo` the person enrolled as `name`?"""
        self.connect()
        start = time.perf_counter()
        probe = self.encrypt(photo, self.level_against(name))
        body = {"name": name, "probe": _b64(probe.ciphertext)}
        sent = time.perf_counter()
        answer = self._answer(self._signed("POST", "/v1/templates/verify", body), sent)
        result = self._result(answer, start, [probe], name=name)
        result.template_photos = self.template_photos(name)
        return result

    def identify(self, photo) -> list[tuple[str, bool]]:
        """Every enrolled name with its decrypted bit (True = this photo matches it)."""
        self.connect()
        start = time.perf_counter()
        # One probe meets every template, those of several photos too: it asks for their threshold.
        probe = self.encrypt(photo, self.level_against(None)).ciphertext
        body = self._signed("POST", "/v1/identify", {"probe": _b64(probe)})
        results = self._parse(body, IdentifyResult)
        self.timings["identify_s"] = time.perf_counter() - start
        self.timings["identify_server_wall_s"] = results.wall_s
        return [(m.name, self.decrypt(self._result_bytes(m.result))) for m in results.results]

    def templates(self) -> list[dict]:
        return [t.model_dump() for t in self._parse(self._signed("GET", "/v1/templates"), list[TemplateInfo])]

    def delete(self, name: str) -> None:
        self._signed("POST", "/v1/templates/delete", {"name": name})
        self._record_photos(name, None)
