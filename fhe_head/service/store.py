"""What the server keeps between restarts: owners' evaluation keys, signing keys and encrypted templates.

Evaluation keys (tens of MB each) are files under `<data_dir>/keys/`, written to a `.part` file
and renamed only once complete and checked, so a crash or a dropped upload never leaves a partial
key behind. Key files may be evicted (size and age limits): the owner's row, public signing key
and templates stay, and the owner re-uploads the same keys. Templates are ciphertexts in SQLite
(`<data_dir>/privface.sqlite`), one transaction per change. Nothing in the store can decrypt;
files are 0600 in 0700 folders and named by a hash of the key id, so listing them reveals no id.
The same database holds the server id (made once per data directory: signatures name it) and the
nonces of signed requests, so every server process on one data directory refuses the same replays.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from privface_core.errors import (
    EvictedKeysError,
    QuotaError,
    ServiceError,
    TemplateExistsError,
    UnknownKeyError,
    UnknownTemplateError,
)

SCHEMA_VERSION = 2  # 2: owners sign requests (public_key); earlier stores had no owner and are dropped
SCHEMA = """
CREATE TABLE IF NOT EXISTS keys (
    key_id TEXT PRIMARY KEY,
    point TEXT NOT NULL,
    circuit_id TEXT NOT NULL,
    size INTEGER NOT NULL,
    created REAL NOT NULL,
    public_key BLOB NOT NULL,
    last_used REAL NOT NULL,
    stored INTEGER NOT NULL,
    address TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS templates (
    key_id TEXT NOT NULL REFERENCES keys(key_id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    ciphertext BLOB NOT NULL,
    created REAL NOT NULL,
    PRIMARY KEY (key_id, name)
);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value NOT NULL);
CREATE TABLE IF NOT EXISTS nonces (
    owner TEXT NOT NULL,
    nonce TEXT NOT NULL,
    expires REAL NOT NULL,
    PRIMARY KEY (owner, nonce)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS nonces_by_expiry ON nonces(expires);
-- the number of nonces held, kept by SQLite itself (count(*) would scan the table on every request)
CREATE TRIGGER IF NOT EXISTS nonce_added AFTER INSERT ON nonces
    BEGIN UPDATE meta SET value = value + 1 WHERE name = 'nonces'; END;
CREATE TRIGGER IF NOT EXISTS nonce_dropped AFTER DELETE ON nonces
    BEGIN UPDATE meta SET value = value - 1 WHERE name = 'nonces'; END;
"""


class StorageFullError(ServiceError):
    """The data directory's disk is full: nothing new is stored until space is freed (reads still work)."""

    status = 507

    def __init__(self) -> None:
        super().__init__(
            "the server's disk is full: nothing can be stored now (lists, verifications and "
            "identifications still work); try again later"
        )


def disk_full(err: BaseException) -> bool:
    """Whether a write failed for want of space (SQLite's SQLITE_FULL, or ENOSPC / EDQUOT)."""
    if isinstance(err, sqlite3.OperationalError):
        return getattr(err, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL
    return isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT)


@dataclass(frozen=True)
class KeyRecord:
    key_id: str
    point: str
    circuit_id: str
    size: int
    created: float
    public_key: bytes
    last_used: float
    stored: bool  # False once evicted
    address: str = ""  # the client address that uploaded the key file (owners registered together share turns)

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k not in ("public_key", "last_used", "address")}


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
        for folder in (self.data_dir, self.key_dir):
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            os.chmod(folder, 0o700)
        self.db_path = self.data_dir / "privface.sqlite"
        self._lock = threading.RLock()
        old_umask = os.umask(0o077)  # the database and its WAL files are created 0600
        try:
            with self._db() as db:
                if db.execute("PRAGMA user_version").fetchone()[0] != SCHEMA_VERSION:
                    db.executescript("DROP TABLE IF EXISTS templates; DROP TABLE IF EXISTS keys;")
                    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                db.executescript(SCHEMA)
                if "address" not in [row[1] for row in db.execute("PRAGMA table_info(keys)")]:  # stores before it
                    db.execute("ALTER TABLE keys ADD COLUMN address TEXT NOT NULL DEFAULT ''")
                first = [("server_id", secrets.token_hex(16)), ("nonces_since", int(time.time())), ("nonces", 0)]
                db.executemany("INSERT OR IGNORE INTO meta VALUES (?, ?)", first)
                meta = dict(db.execute("SELECT name, value FROM meta").fetchall())
            # Held open for the process's life: the WAL's shared-memory file then stays (SQLite removes it with
            # the last connection and cannot make it again on a full disk, and every read would fail).
            self._keeper = sqlite3.connect(self.db_path, check_same_thread=False)
            self._keeper.execute("SELECT count(*) FROM meta").fetchall()
        finally:
            os.umask(old_umask)
        self.server_id: str = meta["server_id"]  # the audience of every signature this deployment accepts
        self.nonces_since: int = meta["nonces_since"]  # nonces are remembered from this time on
        self._recover()

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.db_path, timeout=30)
        db.execute("PRAGMA foreign_keys = ON")
        db.execute("PRAGMA journal_mode = WAL")
        try:
            with db:  # one transaction: committed on success, rolled back on any error
                yield db
        except (sqlite3.OperationalError, OSError) as err:
            if disk_full(err):
                raise StorageFullError() from err
            raise
        finally:
            db.close()

    def _recover(self) -> None:
        """After a crash: drop abandoned partial uploads and files without a row; rows without a file are evicted.
        Two processes may share the data directory: a partial upload is abandoned only when no process holds
        its lock (`partial_key`), and a minute old (it is locked right after it is made)."""
        for part in self.key_dir.glob("*.part"):
            try:
                if time.time() - part.stat().st_mtime < 60:
                    continue
                with part.open("rb") as held:
                    fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # BlockingIOError: a live upload holds it
                    part.unlink(missing_ok=True)
            except (BlockingIOError, FileNotFoundError):
                continue
        with self._db() as db:
            known = {row[0] for row in db.execute("SELECT key_id FROM keys")}
            for key_id in known:
                if not self.key_path(key_id).is_file():
                    db.execute("UPDATE keys SET stored = 0 WHERE key_id = ?", (key_id,))
        names = {self.key_path(k).name for k in known}
        for path in self.key_dir.glob("*.bin"):
            if path.name not in names:
                path.unlink(missing_ok=True)

    # ---- evaluation keys -------------------------------------------------------------------
    def key_path(self, key_id: str) -> Path:
        return self.key_dir / f"{hashlib.sha256(key_id.encode()).hexdigest()[:32]}.bin"

    @contextmanager
    def partial_key(self) -> Iterator[Path]:
        """A fresh temporary file (0600) for an upload in progress, locked while the block runs (so no other
        process's start-up sweeps it) and removed afterwards unless `add_key` moved it into place."""
        part = self.key_dir / f"upload-{os.getpid()}-{threading.get_ident()}-{time.monotonic_ns()}.part"
        try:
            fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError as err:
            if disk_full(err):
                raise StorageFullError() from err
            raise
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield part
        finally:
            part.unlink(missing_ok=True)
            os.close(fd)

    def add_key(
        self, part: Path, key_id: str, point: str, circuit_id: str, public_key: bytes, address: str = ""
    ) -> KeyRecord:
        """Move a complete, checked upload into place and record it (idempotent; restores evicted keys).
        `address`: the client address it came from (eviction is shared per address)."""
        size = part.stat().st_size
        now = time.time()
        with self._lock:
            existing = self.key_or_none(key_id)
            if existing is not None and existing.stored:
                part.unlink(missing_ok=True)
                return existing
            os.chmod(part, 0o600)
            os.replace(part, self.key_path(key_id))
            with self._db() as db:
                if existing is None:
                    record = KeyRecord(key_id, point, circuit_id, size, now, public_key, now, True, address)
                    columns = "key_id, point, circuit_id, size, created, public_key, last_used, stored, address"
                    values = tuple(asdict(record).values())
                    db.execute(f"INSERT INTO keys ({columns}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", values)
                else:
                    query = "UPDATE keys SET stored = 1, last_used = ?, address = ? WHERE key_id = ?"
                    db.execute(query, (now, address, key_id))
            return self.key(key_id)

    def key_or_none(self, key_id: str) -> KeyRecord | None:
        with self._db() as db:
            row = db.execute("SELECT * FROM keys WHERE key_id = ?", (key_id,)).fetchone()
        return KeyRecord(*row[:7], bool(row[7]), row[8]) if row else None

    def key(self, key_id: str) -> KeyRecord:
        record = self.key_or_none(key_id)
        if record is None:
            raise UnknownKeyError("unknown key id: upload your evaluation keys first")
        return record

    def key_bytes(self, key_id: str) -> bytes:
        """The stored evaluation keys (EvictedKeysError when they were evicted)."""
        try:
            return self.key_path(key_id).read_bytes()
        except FileNotFoundError:
            raise EvictedKeysError("evaluation keys evicted from the server: upload them again") from None

    def touch(self, key_id: str) -> None:
        try:
            with self._db() as db:
                db.execute("UPDATE keys SET last_used = ? WHERE key_id = ?", (time.time(), key_id))
        except StorageFullError:
            pass  # the last use only orders evictions: a full disk must not stop verifications

    def delete_key(self, key_id: str) -> None:
        """Forget an owner: its keys, signing key and every template stored under them."""
        with self._lock:
            with self._db() as db:
                db.execute("DELETE FROM keys WHERE key_id = ?", (key_id,))
            self.key_path(key_id).unlink(missing_ok=True)

    def key_usage(self) -> tuple[int, int]:
        """(stored key files, their bytes)."""
        with self._db() as db:
            count, size = db.execute("SELECT count(*), coalesce(sum(size), 0) FROM keys WHERE stored = 1").fetchone()
        return int(count), int(size)

    def owners(self) -> int:
        with self._db() as db:
            return int(db.execute("SELECT count(*) FROM keys").fetchone()[0])

    def evict(self, max_keys: int, max_bytes: int, max_idle_s: float, keep: str | None = None) -> list[str]:
        """Evict key files: those idle too long, then, until within the bounds, the least recently used of the
        client address that uploaded the most (registrations from one address evict that address's own
        keys first, not an established owner's). Returns key ids."""
        with self._lock:
            with self._db() as db:
                query = "SELECT key_id, size, last_used, address FROM keys WHERE stored = 1 ORDER BY last_used"
                stored = db.execute(query).fetchall()
            count, total = len(stored), sum(r[1] for r in stored)
            rows = [r for r in stored if r[0] != keep]
            now = time.time()
            chosen = [r for r in rows if now - r[2] > max_idle_s]
            rows = [r for r in rows if r not in chosen]
            count, total = count - len(chosen), total - sum(r[1] for r in chosen)
            while rows and (count > max_keys or total > max_bytes):
                held: dict[str, int] = {}  # key files each address holds, the one just uploaded included
                for row in stored:
                    if row not in chosen:
                        held[row[3]] = held.get(row[3], 0) + 1
                most = max(held[r[3]] for r in rows)
                row = next(r for r in rows if held[r[3]] == most)  # rows are least recently used first
                rows.remove(row)
                chosen.append(row)
                count, total = count - 1, total - row[1]
            for key_id, *_ in chosen:
                self.key_path(key_id).unlink(missing_ok=True)
                with self._db() as db:
                    db.execute("UPDATE keys SET stored = 0 WHERE key_id = ?", (key_id,))
        return [key_id for key_id, *_ in chosen]

    # ---- nonces of signed requests -----------------------------------------------------------
    def use_nonce(self, owner: str, nonce: str, now: float, keep_s: float, per_owner: int, total: int) -> bool:
        """Remember `owner`'s `nonce` for `keep_s`; False if it was used already. QuotaError when `owner` already
        has `per_owner` remembered (one owner cannot fill the ledger for the others) or all owners `total`."""
        with self._db() as db:
            # Not synced to disk on every request (an fsync each would dominate): a crashed server keeps them all; a
            # machine losing power may forget the last few, then replayable until their window ends.
            db.execute("PRAGMA synchronous = NORMAL")
            db.execute("DELETE FROM nonces WHERE expires < ?", (now,))  # a write first: the lock is taken here
            if db.execute("SELECT 1 FROM nonces WHERE owner = ? AND nonce = ?", (owner, nonce)).fetchone():
                return False
            keep = f"{keep_s:.0f} s"
            if db.execute("SELECT count(*) FROM nonces WHERE owner = ?", (owner,)).fetchone()[0] >= per_owner:
                raise QuotaError(f"signed requests per key within {keep}: limit {per_owner} (retry later)")
            if db.execute("SELECT value FROM meta WHERE name = 'nonces'").fetchone()[0] >= total:
                raise QuotaError(f"signed requests on this server within {keep}: limit {total} (retry later)")
            db.execute("INSERT INTO nonces VALUES (?, ?, ?)", (owner, nonce, now + keep_s))
        return True

    # ---- templates -------------------------------------------------------------------------
    def add_template(
        self, key_id: str, name: str, ciphertext: bytes, replace: bool, per_key: int, total: int
    ) -> TemplateRecord:
        """Store a template; QuotaError when the owner or the server holds as many as allowed."""
        created = time.time()
        with self._lock, self._db() as db:
            exists = db.execute("SELECT 1 FROM templates WHERE key_id = ? AND name = ?", (key_id, name)).fetchone()
            if exists and not replace:
                raise TemplateExistsError("a template of that name already exists (replace it explicitly)")
            if not exists:
                mine = db.execute("SELECT count(*) FROM templates WHERE key_id = ?", (key_id,)).fetchone()[0]
                if mine >= per_key:
                    raise QuotaError(f"templates per key: limit {per_key} reached")
                if db.execute("SELECT count(*) FROM templates").fetchone()[0] >= total:
                    raise QuotaError(f"templates on this server: limit {total} reached")
            db.execute("INSERT OR REPLACE INTO templates VALUES (?, ?, ?, ?)", (key_id, name, ciphertext, created))
        return TemplateRecord(name, len(ciphertext), created)

    def templates(self, key_id: str) -> list[TemplateRecord]:
        with self._db() as db:
            rows = db.execute(
                "SELECT name, length(ciphertext), created FROM templates WHERE key_id = ? ORDER BY name", (key_id,)
            ).fetchall()
        return [TemplateRecord(*row) for row in rows]

    def template_count(self, key_id: str) -> int:
        with self._db() as db:
            return int(db.execute("SELECT count(*) FROM templates WHERE key_id = ?", (key_id,)).fetchone()[0])

    def template(self, key_id: str, name: str) -> bytes:
        with self._db() as db:
            query = "SELECT ciphertext FROM templates WHERE key_id = ? AND name = ?"
            row = db.execute(query, (key_id, name)).fetchone()
        if row is None:
            raise UnknownTemplateError("no template of that name for this key")
        return bytes(row[0])

    def all_templates(self, key_id: str) -> list[tuple[str, bytes]]:
        with self._db() as db:
            rows = db.execute("SELECT name, ciphertext FROM templates WHERE key_id = ? ORDER BY name", (key_id,))
            return [(name, bytes(blob)) for name, blob in rows.fetchall()]

    def delete_template(self, key_id: str, name: str) -> None:
        with self._db() as db:
            deleted = db.execute("DELETE FROM templates WHERE key_id = ? AND name = ?", (key_id, name)).rowcount
        if not deleted:
            raise UnknownTemplateError("no template of that name for this key")
