"""Request signing between the key owner and the verification server (shared by both sides).

The key owner holds an Ed25519 signing key made with its FHE keys; the public half is registered
with the evaluation keys, and the key id is a hash of both, so a key id alone grants nothing.
Every request carries a signature over one canonical message (the server's id, method, path,
query, key id, timestamp, nonce, body SHA-256); a server accepts only messages naming its own id
(from its /version), a timestamp within a window and each nonce once, so a captured request
cannot be altered, replayed, or sent to another server. The body's hash travels in a header too, so
the server checks the signature before it reads a byte of the body, then that the body has that hash
(the hash fixes the body's length as well).
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from privface_core.errors import AuthError, CryptoError, QuotaError
from privface_core.private_files import write_private

SCHEME = b"privface-sig-v1"  # key ids (kept: stored ids stay valid)
SIGNED = b"privface-sig-v2"  # v2: the message names the server (audience)
HEADER_KEY = "x-privface-key"  # the key id (or, on key upload, absent)
HEADER_PUBLIC_KEY = "x-privface-public-key"  # base64 Ed25519 public key, on key upload only
HEADER_TIME = "x-privface-time"
HEADER_NONCE = "x-privface-nonce"
HEADER_SIGNATURE = "x-privface-signature"
HEADER_AUDIENCE = "x-privface-audience"  # the server id signed for (sent too, so a mismatch says so)
HEADER_BODY_SHA256 = "x-privface-body-sha256"  # the signed body hash, sent too: checked before the body is read
KEY_ID_CHARS = 32
NONCE_CHARS = 32
WINDOW_S = 120  # clocks may differ this much; a signed request is valid this long


class ReplayCacheFull(QuotaError):
    """More signed requests within the window than the server remembers nonces for: retry later."""


def key_id_for(public_key: bytes, evaluation_keys_sha256: bytes) -> str:
    """The key id: binds the evaluation keys to the signing key registered with them."""
    return hashlib.sha256(SCHEME + public_key + evaluation_keys_sha256).hexdigest()[:KEY_ID_CHARS]


def canonical(
    audience: str, method: str, path: str, query: str, identity: str, timestamp: str, nonce: str, body_sha256: bytes
) -> bytes:
    """What is signed. `audience`: the server's id; `identity`: the key id, or the base64 public key when
    registering keys."""
    fields = [SIGNED, audience.encode(), method.upper().encode(), path.encode(), query.encode(), identity.encode()]
    fields += [timestamp.encode(), nonce.encode(), body_sha256.hex().encode()]
    return b"\n".join(fields)


class Signer:
    """The key owner's signing key (private: it stays with the FHE secret key, mode 0600)."""

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._key = private_key
        self.public_key = private_key.public_key().public_bytes_raw()

    @classmethod
    def generate(cls) -> Signer:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def load_or_create(cls, path: Path | None) -> Signer:
        if path is None:
            return cls.generate()
        if path.is_file():
            try:
                return cls(Ed25519PrivateKey.from_private_bytes(path.read_bytes()))
            except ValueError as err:
                raise CryptoError(f"signing key file {path} is corrupted: delete or restore it") from err
        signer = cls.generate()
        signer.save(path)
        return signer

    def save(self, path: Path) -> None:
        write_private(path, self._key.private_bytes_raw())

    @property
    def public_key_b64(self) -> str:
        return base64.b64encode(self.public_key).decode()

    def headers(
        self, method: str, path: str, query: str, body_sha256: bytes, key_id: str | None, *, audience: str
    ) -> dict[str, str]:
        """Signature headers for the server whose id is `audience`; without `key_id` the public key is sent
        instead (key registration)."""
        timestamp, nonce = str(int(time.time())), secrets.token_hex(NONCE_CHARS // 2)
        identity = key_id or self.public_key_b64
        signature = self._key.sign(canonical(audience, method, path, query, identity, timestamp, nonce, body_sha256))
        headers = {HEADER_TIME: timestamp, HEADER_NONCE: nonce, HEADER_SIGNATURE: base64.b64encode(signature).decode()}
        headers[HEADER_AUDIENCE] = audience
        headers[HEADER_BODY_SHA256] = body_sha256.hex()
        headers.update({HEADER_KEY: key_id} if key_id else {HEADER_PUBLIC_KEY: identity})
        return headers


def parse_public_key(text: str) -> bytes:
    try:
        raw = base64.b64decode(text, validate=True)
        Ed25519PublicKey.from_public_bytes(raw)
    except ValueError as err:
        raise AuthError("the public key is not a base64 Ed25519 key") from err
    return raw


class Nonces(Protocol):
    """Where a server remembers the nonces it accepted: `NonceCache` (one process's memory) or the service's
    database (fhe_head/service/app.py, shared by its processes)."""

    window_s: float
    since: float  # nothing signed before this time is accepted: its nonce may have been used

    def add(self, owner: str, nonce: str, now: float) -> bool: ...


class NonceCache:
    """Nonces seen within the window, in this process's memory, bounded: when full of unexpired nonces, new
    requests wait (429) rather than forgetting a nonce that could then be replayed; one owner may hold at
    most `max_per_owner` of them, so it cannot make the others wait. (The server keeps its nonces where all
    its processes see them: fhe_head/service/store.py.)"""

    def __init__(self, window_s: float = WINDOW_S, max_items: int = 200_000, max_per_owner: int = 10_000) -> None:
        self.window_s, self.max_items, self.max_per_owner = window_s, max_items, max_per_owner
        # It remembers nothing older than itself: a request signed before it existed (before a server
        # restart) may have been used already, so it is refused (`check_fresh`).
        self.since = int(time.time())
        self._seen: OrderedDict[tuple[str, str], float] = OrderedDict()
        self._per_owner: dict[str, int] = {}
        self._lock = threading.Lock()

    def add(self, owner: str, nonce: str, now: float) -> bool:
        """False when `owner` already used the nonce."""
        with self._lock:
            while self._seen and next(iter(self._seen.values())) < now - 2 * self.window_s:
                (old_owner, _), _ = self._seen.popitem(last=False)
                self._per_owner[old_owner] -= 1
                if not self._per_owner[old_owner]:
                    del self._per_owner[old_owner]
            if (owner, nonce) in self._seen:
                return False
            if self._per_owner.get(owner, 0) >= self.max_per_owner:
                raise ReplayCacheFull(
                    f"signed requests per key within {self.window_s:.0f} s: limit {self.max_per_owner}"
                )
            if len(self._seen) >= self.max_items:
                raise ReplayCacheFull(f"signed requests within {self.window_s:.0f} s: limit {self.max_items}")
            self._seen[(owner, nonce)] = now
            self._per_owner[owner] = self._per_owner.get(owner, 0) + 1
            return True


def check_fresh(headers: dict[str, str], nonces: Nonces, audience: str, now: float | None = None) -> None:
    """The checks that need no body: well-formed signature headers signed for this server (`audience`), a
    timestamp within the window and not older than the nonce cache (AuthError otherwise)."""
    now = time.time() if now is None else now
    if headers.get(HEADER_AUDIENCE, "") != audience:
        raise AuthError("request signed for another server: sign it for this one (its id is in /version)")
    timestamp, nonce = headers.get(HEADER_TIME, ""), headers.get(HEADER_NONCE, "")
    if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12):
        raise AuthError("missing or malformed request signature")
    if len(nonce) != NONCE_CHARS or not all(c in "0123456789abcdef" for c in nonce):
        raise AuthError("missing or malformed request signature")
    if abs(now - int(timestamp)) > nonces.window_s:
        raise AuthError(f"request timestamp outside the {nonces.window_s:.0f} s window (check the clock)")
    if int(timestamp) < nonces.since:
        raise AuthError("request signed before the server (re)started: sign it again")


def signed_body_sha256(headers: dict[str, str]) -> bytes:
    """The body hash the request says it signed (`HEADER_BODY_SHA256`): a server checks the signature over it
    before reading the body, then that the body has this hash."""
    text = headers.get(HEADER_BODY_SHA256, "")
    if len(text) != 64 or not all(c in "0123456789abcdef" for c in text):
        raise AuthError(f"missing or malformed {HEADER_BODY_SHA256} header (update the client)")
    return bytes.fromhex(text)


def verify(
    public_key: bytes,
    headers: dict[str, str],
    method: str,
    path: str,
    query: str,
    identity: str,
    body_sha256: bytes,
    nonces: Nonces,
    audience: str,
    now: float | None = None,
) -> None:
    """Raise AuthError unless the headers carry a fresh, unused signature by `public_key` over this request
    to the server whose id is `audience`."""
    now = time.time() if now is None else now
    check_fresh(headers, nonces, audience, now)
    timestamp, nonce, signature = (headers.get(h, "") for h in (HEADER_TIME, HEADER_NONCE, HEADER_SIGNATURE))
    try:
        raw = base64.b64decode(signature, validate=True)
        Ed25519PublicKey.from_public_bytes(public_key).verify(
            raw, canonical(audience, method, path, query, identity, timestamp, nonce, body_sha256)
        )
    except (InvalidSignature, ValueError) as err:
        raise AuthError("bad request signature") from err
    if not nonces.add(identity, nonce, now):
        raise AuthError("replayed request")
