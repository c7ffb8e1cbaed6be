"""The user's private files (secret keys, signing keys, logs): theirs alone from the first byte.

`write_private` writes a temporary file of mode 0600 (mkstemp) in a folder of mode 0700 (`private_dir`) and
renames it into place, so an interrupted write leaves the old file and no readable copy; `open_private_log`
opens a log of mode 0600.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

__all__ = ["open_private_log", "private_dir", "write_private"]


def private_dir(path: str | Path) -> Path:
    """`path`, created with mode 0700 or, if it exists with access for others, tightened to 0700."""
    path = Path(path).expanduser()
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    if path.stat().st_mode & 0o077:
        path.chmod(0o700)
    return path


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _remove_stale_temps(directory: Path, name: str) -> None:
    """Temporary copies of `name` whose writer is gone (killed while writing): `.NAME.PID.*.tmp`."""
    for tmp in directory.glob(f".{name}.*.tmp"):
        pid = tmp.name[len(name) + 2 :].split(".", 1)[0]
        if pid.isdigit() and not _pid_alive(int(pid)):
            with contextlib.suppress(OSError):
                tmp.unlink()


def write_private(path: str | Path, data: bytes) -> None:
    """`data` to `path` atomically, readable by its owner only from the first byte: a temporary name of
    its own in the same folder (mkstemp: mode 0600), then `os.replace`. An interrupted write leaves
    `path` as it was; its temporary file is removed now or, if the process was killed, by the next write."""
    path = Path(path).expanduser()
    directory = private_dir(path.parent)
    _remove_stale_temps(directory, path.name)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def open_private_log(path: str | Path):
    """`path` opened for appending (binary), mode 0600 whether new or not (a log may show what was asked)."""
    fd = os.open(Path(path).expanduser(), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.fchmod(fd, 0o600)
    return os.fdopen(fd, "ab")
