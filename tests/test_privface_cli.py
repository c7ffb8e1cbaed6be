"""`python -m privface`: every exit status and message, against a real server on loopback (fast head).

Exit statuses (privface/exitcodes.py): 0 same / match / done, 1 failed, 2 usage, 3 different / no match.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from fhe_head.artifacts import ARTIFACTS_ROOT
from privface import cli
from privface.exitcodes import FAILED, NEGATIVE, OK, USAGE
from privface.levels import describe
from privface.resources import EXAMPLES_DIR

pytestmark = pytest.mark.skipif(not (ARTIFACTS_ROOT / "fast" / "meta.json").is_file(), reason="no shipped head")
OBAMA, OBAMA2, OBAMA3, BIDEN = (EXAMPLES_DIR / f for f in ("obama.jpg", "obama2.jpg", "obama3.jpg", "biden.jpg"))
CAT = EXAMPLES_DIR / "chelsea_cat.jpg"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from privface.local_server import LocalServer

    server = LocalServer(tmp_path_factory.mktemp("server"), points=("fast",)).start()
    yield server
    server.stop()


@pytest.fixture
def key_dir(tmp_path) -> Path:
    return tmp_path / "keys"


def run(capsys, *args: str) -> tuple[int, str, str]:
    status = cli.main(list(args))
    out = capsys.readouterr()
    return status, out.out, out.err


def opts(server, key_dir: Path) -> list[str]:
    return ["--url", server.url, "--point", "fast", "--key-dir", str(key_dir), "--tta", "none"]


def server_key_count(server) -> int:
    return len(list((server.data_dir / "keys").glob("*.bin")))


@pytest.mark.parametrize(
    "argv",
    [[], ["compare", "only-one.jpg"], ["enrol", "x.jpg"], ["frobnicate"], ["list", "--no-such-option"]],
    ids=["no-command", "missing-photo-arg", "missing-name", "unknown-command", "unknown-option"],
)
def test_usage_errors_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(argv)
    assert exit_.value.code == USAGE
    assert "usage:" in capsys.readouterr().err


def test_a_missing_file_is_named_before_any_key_work(server, key_dir, capsys):
    keys_before = server_key_count(server)
    status, out, err = run(capsys, "compare", str(OBAMA), "/no/such/photo.jpg", *opts(server, key_dir))
    assert status == FAILED and out == ""
    assert err.strip() == "error: /no/such/photo.jpg: no such file"
    assert not key_dir.exists() and server_key_count(server) == keys_before  # no keys made, none uploaded


def test_no_face_names_the_file(server, key_dir, capsys):
    status, _, err = run(capsys, "identify", str(CAT), *opts(server, key_dir))
    assert status == FAILED and err.strip() == f"error: {CAT}: no face found in the image"
    assert not key_dir.exists()


def test_a_tiny_image_is_one_line(server, key_dir, capsys, tmp_path):
    from PIL import Image

    tiny = tmp_path / "tiny.png"
    Image.new("RGB", (2, 2)).save(tiny)
    status, _, err = run(capsys, "compare", str(tiny), str(OBAMA), *opts(server, key_dir))
    assert status == FAILED and err.strip().startswith(f"error: {tiny}: image is too small: 2x2 px")


def test_compare_same_and_different_quiet_by_default_options_after_the_command(server, key_dir, capsys):
    status, out, err = run(capsys, "compare", str(OBAMA), str(OBAMA2), *opts(server, key_dir))
    assert (status, out, err) == (OK, "Same person\n", "")
    status, out, err = run(capsys, *opts(server, key_dir), "compare", str(OBAMA), str(BIDEN))
    assert (status, out, err) == (NEGATIVE, "Different people\n", "")
    status, out, _ = run(capsys, "compare", str(OBAMA), str(BIDEN), "--json", *opts(server, key_dir))
    result = json.loads(out)
    assert status == NEGATIVE and result["same"] is False and result["timings"]["server_fhe_s"] > 0
    status, out, err = run(capsys, "compare", str(OBAMA), str(OBAMA2), "--verbose", *opts(server, key_dir))
    assert (status, out) == (OK, "Same person\n")
    assert "key id" in err and "server_fhe_s" in err and f"{OBAMA}: face found" in err  # keys, steps, timings
    assert f"security level 1e-3: {describe('fast', '1e-3')}" in err  # the default level, and what it means


def test_templates_list_verify_identify_delete(server, key_dir, capsys):
    o = opts(server, key_dir)
    assert run(capsys, "enrol", str(OBAMA), "--name", "obama", *o)[0] == OK
    status, out, _ = run(capsys, "list", *o)
    header, row = out.strip().splitlines()
    assert status == OK and header.split() == ["NAME", "CIPHERTEXT", "ENROLLED"]
    assert row.split()[0] == "obama" and row.split()[2] == "KB" and len(row.split()[3]) == 10  # a date
    status, out, _ = run(capsys, "list", "--json", *o)
    [record] = json.loads(out)
    assert status == OK and record["name"] == "obama" and record["created"] > 1e9
    assert run(capsys, "verify", str(OBAMA2), "--name", "obama", *o)[:2] == (OK, "Same person as 'obama'\n")
    assert run(capsys, "verify", str(BIDEN), "--name", "obama", *o)[:2] == (NEGATIVE, "Different people\n")
    assert run(capsys, "identify", str(OBAMA3), *o)[:2] == (OK, "MATCH  obama\n")
    assert run(capsys, "identify", str(BIDEN), *o)[:2] == (NEGATIVE, "no match among 1 templates\n")
    status, _, err = run(capsys, "delete", "ghost", *o)
    assert (status, err) == (FAILED, "error: no template named 'ghost' is enrolled under your key\n")
    status, _, err = run(capsys, "verify", str(OBAMA2), "--name", "ghost", *o)
    assert (status, err) == (FAILED, "error: no template named 'ghost' is enrolled under your key\n")
    assert run(capsys, "delete", "obama", *o)[:2] == (OK, "deleted 'obama'\n")
    assert run(capsys, "identify", str(OBAMA), *o)[:2] == (NEGATIVE, "no templates enrolled under this key\n")


def test_forget_asks_unless_yes_and_list_afterwards_uploads_nothing(server, key_dir, capsys, monkeypatch):
    o = opts(server, key_dir)
    assert run(capsys, "enrol", str(OBAMA), "--name", "me", *o)[0] == OK
    keys = server_key_count(server)
    monkeypatch.setattr(sys.stdin, "isatty", lambda: False)
    status, _, err = run(capsys, "forget", *o)
    assert status == USAGE and "--yes" in err and server_key_count(server) == keys
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True)
    monkeypatch.setattr("builtins.input", lambda prompt: "n")
    assert run(capsys, "forget", *o)[:2] == (OK, "nothing deleted\n") and server_key_count(server) == keys
    assert run(capsys, "forget", "--yes", *o)[:2] == (OK, "the server no longer holds your keys or templates\n")
    assert server_key_count(server) == keys - 1
    status, out, _ = run(capsys, "list", *o)
    assert (status, out) == (OK, "the server holds no keys of yours\n") and server_key_count(server) == keys - 1
    assert run(capsys, "delete", "me", *o)[0] == FAILED


def test_server_unreachable_fails_with_one_line(key_dir, capsys):
    from privface.local_server import free_port

    url = f"http://127.0.0.1:{free_port()}"
    status, _, err = run(capsys, "compare", str(OBAMA), str(OBAMA2), "--url", url, "--key-dir", str(key_dir))
    assert status == FAILED and err.startswith("error: cannot reach the server") and len(err.splitlines()) == 1


def test_the_real_command_line_process(tmp_path):
    """`python -m privface`: usage status from argparse, a missing file named, no traceback."""
    command = [sys.executable, "-m", "privface"]
    usage = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert usage.returncode == USAGE and "usage: python -m privface" in usage.stderr
    missing = subprocess.run(
        [*command, "compare", "nope.jpg", str(OBAMA), "--key-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert missing.returncode == FAILED and missing.stderr.strip() == "error: nope.jpg: no such file"


def test_no_cuda_notice_on_a_machine_with_nvcc_but_no_gpu(tmp_path):
    """torch prints a CUDA notice on stderr when Concrete-ML is imported where nvcc exists but no GPU does;
    the client and server load Concrete-ML quietly, so a user's terminal shows only our own lines."""
    import os

    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    (fake_bin / "nvcc").write_text("#!/bin/sh\nexit 1\n")
    (fake_bin / "nvcc").chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k not in ("CUDA_HOME", "CUDA_PATH")}
    env["PATH"] = f"{fake_bin}{os.pathsep}{env['PATH']}"

    def stderr_of(code: str) -> str:
        done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        return done.stderr

    if "No CUDA runtime" not in stderr_of("import concrete.ml.deployment"):
        pytest.skip("torch prints no CUDA notice on this machine (a GPU, or another torch)")
    both_roles = "from fhe_head.client import FHEClient; from fhe_head.server import FHEServer\n"
    assert "CUDA" not in stderr_of(both_roles + "FHEClient('fast'), FHEServer('fast')")
