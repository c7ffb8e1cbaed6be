"""Secret keys and logs are the user's alone from their first byte, and an interrupted write breaks nothing."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from privface_core import private_files


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def open_umask():
    """The most permissive umask a user may have: modes come from the code, not from the umask."""
    old = os.umask(0)
    yield
    os.umask(old)


def test_a_private_file_is_0600_while_written_and_an_interrupted_write_leaves_nothing(
    tmp_path, monkeypatch, open_umask
):
    target = tmp_path / "keys" / "c.keys"
    private_files.write_private(target, b"old")
    seen = []

    def interrupted(fd: int) -> None:  # Ctrl-C after the data was written, before the rename
        seen.append(stat.S_IMODE(os.fstat(fd).st_mode))
        raise KeyboardInterrupt

    monkeypatch.setattr(private_files.os, "fsync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        private_files.write_private(target, b"new secret")
    assert seen == [0o600]  # the temporary file, with the secret in it
    assert target.read_bytes() == b"old" and mode(target) == 0o600
    assert sorted(p.name for p in target.parent.iterdir()) == ["c.keys"]  # no temporary file left
    assert mode(target.parent) == 0o700


def test_a_temporary_file_of_a_killed_writer_is_removed_and_a_live_ones_kept(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f".c.keys.{int(dead.stdout)}.abc123.tmp"
    live = tmp_path / f".c.keys.{os.getppid()}.def456.tmp"  # a writer still running (here: our parent)
    for path in (stale, live):
        path.write_bytes(b"x" * 100)
    private_files.write_private(tmp_path / "c.keys", b"keys")
    assert not stale.exists() and live.exists()
    assert (tmp_path / "c.keys").read_bytes() == b"keys"


def test_an_open_key_folder_is_tightened_to_0700(tmp_path, open_umask):
    folder = tmp_path / "keys"
    folder.mkdir(mode=0o755)
    assert mode(folder) == 0o755
    assert private_files.private_dir(folder) == folder and mode(folder) == 0o700


def test_a_log_is_0600_new_or_existing(tmp_path, open_umask):
    new, old = tmp_path / "new.log", tmp_path / "old.log"
    old.write_text("earlier\n")
    old.chmod(0o644)
    for path in (new, old):
        with private_files.open_private_log(path) as log:
            log.write(b"line\n")
        assert mode(path) == 0o600
    assert old.read_text() == "earlier\nline\n"
