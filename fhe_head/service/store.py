"""What the server keeps between restarts: clients' evaluation keys and encrypted templates.

Evaluation keys (tens of MB each) are files under `<data_dir>/keys/`, written to a `.part` file
and renamed only once complete and parsed, so a crash or a dropped upload never leaves a partial
key behind. Templates are ciphertexts in SQLite (`<data_dir>/privface.sqlite`), one transaction
per change. Everything here is public material: nothing in the store can decrypt anything.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS keys (
    key_id TEXT PRIMARY KEY,
    point TEXT NOT NULL,
    circuit_id TEXT NOT NULL,
    size INTEGER NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS templates (
    key_id TEXT NOT NULL REFERENCES keys(key_id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    ciphertext BLOB NOT NULL,
    created REAL NOT NULL,
    PRIMARY KEY (key_id, name)
);
"""


class NotFoundError(KeyError):
    """An unknown key id or template name."""


class ConflictError(ValueError):
    """A template of that name already exists for this key."""


@dataclass(frozen=True)
class KeyRecord:
    key_id: str
    point: str
    circuit_id: str
    size: int
    created: float

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class TemplateRecord:
    name: str
    size: int
    created: float

    def to_dict(self) -> dict:
        return asdict(self)


class Store:
    """SQLite + key files under one data directory. Thread-safe (one connection per call)."""

    def __init__(self, data_dir: str | Path) -> None:
        self.data_dir = Path(data_dir).expanduser()
        self.key_dir = self.data_dir / "keys"
        self.key_dir.mkdir(parents=True, exist_ok=True)
        self.db_path = self.data_dir / "privface.sqlite"
        self._lock = threading.Lock()
        with self._db() as db:
            db.executescript(SCHEMA)
        self._recover()

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.db_path, timeout=30)
        db.execute("PRAGMA foreign_keys = ON")
        db.execute("PRAGMA journal_mode = WAL")
        try:
            with db:  # one transaction: committed on success, rolled back on any error
                yield db
        finally:
            db.close()

    def _recover(self) -> None:
        """After a crash: drop partial uploads, key files without a row, rows without a file."""
        for part in self.key_dir.glob("*.part"):
            part.unlink(missing_ok=True)
        with self._db() as db:
            known = {row[0] for row in db.execute("SELECT key_id FROM keys")}
            for key_id in known:
                if not self.key_path(key_id).is_file():
                    db.execute("DELETE FROM keys WHERE key_id = ?", (key_id,))
        for path in self.key_dir.glob("*.bin"):
            if path.stem not in known:
                path.unlink(missing_ok=True)

    # ---- evaluation keys -------------------------------------------------------------------
    def key_path(self, key_id: str) -> Path:
        if not key_id.isalnum():
            raise NotFoundError(key_id)
        return self.key_dir / f"{key_id}.bin"

    def partial_key_path(self) -> Path:
        """A fresh temporary file for an upload in progress (removed on failure or restart)."""
        return self.key_dir / f"upload-{os.getpid()}-{threading.get_ident()}-{time.monotonic_ns()}.part"

    def add_key(self, part: Path, key_id: str, point: str, circuit_id: str) -> KeyRecord:
        """Move a complete, checked upload into place and record it (idempotent per key id)."""
        size = part.stat().st_size
        with self._lock:
            existing = self._key_or_none(key_id)
            if existing is not None:
                part.unlink(missing_ok=True)
                return existing
            os.replace(part, self.key_path(key_id))
            record = KeyRecord(key_id, point, circuit_id, size, time.time())
            with self._db() as db:
                db.execute("INSERT INTO keys VALUES (?, ?, ?, ?, ?)", tuple(asdict(record).values()))
            return record

    def _key_or_none(self, key_id: str) -> KeyRecord | None:
        with self._db() as db:
            row = db.execute("SELECT * FROM keys WHERE key_id = ?", (key_id,)).fetchone()
        return KeyRecord(*row) if row else None

    def key(self, key_id: str) -> KeyRecord:
        record = self._key_or_none(key_id)
        if record is None:
            raise NotFoundError(f"unknown key id {key_id!r}: upload your evaluation keys first")
        return record

    def delete_key(self, key_id: str) -> None:
        """Forget a client: its keys and every template stored under them."""
        self.key(key_id)
        with self._lock:
            with self._db() as db:
                db.execute("DELETE FROM keys WHERE key_id = ?", (key_id,))
            self.key_path(key_id).unlink(missing_ok=True)

    # ---- templates -------------------------------------------------------------------------
    def add_template(self, key_id: str, name: str, ciphertext: bytes, replace: bool = False) -> TemplateRecord:
        self.key(key_id)
        created = time.time()
        verb = "INSERT OR REPLACE" if replace else "INSERT"
        try:
            with self._db() as db:
                db.execute(f"{verb} INTO templates VALUES (?, ?, ?, ?)", (key_id, name, ciphertext, created))
        except sqlite3.IntegrityError as err:
            raise ConflictError(f"a template named {name!r} already exists (replace it explicitly)") from err
        return TemplateRecord(name, len(ciphertext), created)

    def templates(self, key_id: str) -> list[TemplateRecord]:
        self.key(key_id)
        with self._db() as db:
            rows = db.execute(
                "SELECT name, length(ciphertext), created FROM templates WHERE key_id = ? ORDER BY name", (key_id,)
            ).fetchall()
        return [TemplateRecord(*row) for row in rows]

    def template(self, key_id: str, name: str) -> bytes:
        self.key(key_id)
        with self._db() as db:
            query = "SELECT ciphertext FROM templates WHERE key_id = ? AND name = ?"
            row = db.execute(query, (key_id, name)).fetchone()
        if row is None:
            raise NotFoundError(f"no template named {name!r} for this key")
        return bytes(row[0])

    def all_templates(self, key_id: str) -> list[tuple[str, bytes]]:
        self.key(key_id)
        with self._db() as db:
            rows = db.execute("SELECT name, ciphertext FROM templates WHERE key_id = ? ORDER BY name", (key_id,))
            return [(name, bytes(blob)) for name, blob in rows.fetchall()]

    def delete_template(self, key_id: str, name: str) -> None:
        self.key(key_id)
        with self._db() as db:
            deleted = db.execute("DELETE FROM templates WHERE key_id = ? AND name = ?", (key_id, name)).rowcount
        if not deleted:
            raise NotFoundError(f"no template named {name!r} for this key")
