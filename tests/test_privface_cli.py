"""`python -m privface`: every exit status and message, against a real server on loopback (fast head).

Exit statuses (privface/exitcodes.py): 0 same / match / done, 1 failed, 2 usage, 3 different / no match.
"""

from __future__ import annotations

import http.server
import json
import os
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from fhe_head.artifacts import ARTIFACTS_ROOT
from privface import cli
from privface.levels import describe
from privface.resources import EXAMPLES_DIR
from privface_core.exitcodes import FAILED, NEGATIVE, OK, USAGE

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
    start = time.perf_counter()
    status, out, _ = run(capsys, "compare", str(OBAMA), str(BIDEN), "--json", *opts(server, key_dir))
    wall = time.perf_counter() - start
    result = json.loads(out)
    assert status == NEGATIVE and result["same"] is False and result["timings"]["server_fhe_s"] > 0
    timings = result["timings"]  # total_s: the whole command, the photos' encoding and the keys' loading included
    assert sum(timings[k] for k in ("encode_s", "encrypt_s", "round_trip_s", "decrypt_s")) < timings["total_s"] < wall
    status, out, err = run(capsys, "compare", str(OBAMA), str(OBAMA2), "--verbose", *opts(server, key_dir))
    assert (status, out) == (OK, "Same person\n")
    assert "key id" in err and "server_fhe_s" in err and f"{OBAMA}: face found" in err  # keys, steps, timings
    assert f"security level 1e-3: {describe('fast', '1e-3')}" in err  # the default level, and what it means


def test_templates_list_verify_identify_delete(server, key_dir, capsys):
    o = opts(server, key_dir)
    assert run(capsys, "enrol", str(OBAMA), "--name", "obama", *o)[0] == OK
    status, _, err = run(capsys, "enrol", str(OBAMA2), "--name", "obama", *o)
    assert (status, err) == (FAILED, "error: a template named 'obama' exists: add --replace to overwrite it\n")
    status, out, _ = run(capsys, "list", *o)
    header, row = out.strip().splitlines()
    assert status == OK and header.split() == ["NAME", "CIPHERTEXT", "ENROLLED"]
    assert row.split()[0] == "obama" and row.split()[2] == "KB" and len(row.split()[3]) == 10  # a date
    status, out, _ = run(capsys, "list", "--json", *o)
    [record] = json.loads(out)
    assert status == OK and record["name"] == "obama" and record["created"] > 1e9
    assert run(capsys, "verify", str(OBAMA2), "--name", "obama", *o)[:2] == (OK, "Same person as 'obama'\n")
    assert run(capsys, "verify", str(BIDEN), "--name", "obama", *o)[:2] == (NEGATIVE, "Different people\n")
    status, out, err = run(capsys, "identify", str(OBAMA3), "-v", *o)
    assert (status, out) == (OK, "MATCH  obama\n")
    # -v says what the level holds, as verify and compare do: identify asks for the several-photo threshold.
    level = describe("fast", "1e-3", None)
    assert f"security level 1e-3 (its threshold for templates of several photos): {level}" in err
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
    monkeypatch.setattr("builtins.input", lambda prompt: (_ for _ in ()).throw(EOFError))  # Ctrl-D: no
    assert run(capsys, "forget", *o)[:2] == (OK, "\nnothing deleted\n") and server_key_count(server) == keys
    forgotten = "fast head: deleted your keys and 1 template from the server\n"
    assert run(capsys, "forget", "--yes", *o)[:2] == (OK, forgotten)
    assert server_key_count(server) == keys - 1
    status, out, _ = run(capsys, "list", *o)
    held = f"the server at {server.url} holds no keys of yours for the fast head\n"
    assert (status, out) == (OK, held) and server_key_count(server) == keys - 1
    assert run(capsys, "delete", "me", *o)[0] == FAILED
    # No keys in the folder: the answer is about the folder, not about a server never asked.
    empty = key_dir.parent / "no-keys"
    status, out, _ = run(capsys, "list", "--url", "http://127.0.0.1:9", "--point", "fast", "--key-dir", str(empty))
    assert (status, out) == (OK, f"no keys for the fast head in {empty}\n")
    status, out, _ = run(capsys, "forget", "--yes", "--url", "http://127.0.0.1:9", "--key-dir", str(empty))
    assert (status, out) == (OK, f"no keys in {empty}: nothing to delete\n")


def test_forget_covers_every_head_in_the_key_folder(server, key_dir, capsys):
    """Keys made for the fast head are forgotten by a plain `forget --yes` (whose --point is the accurate head)."""
    o = opts(server, key_dir)
    assert run(capsys, "enrol", str(OBAMA), "--name", "a", *o)[0] == OK
    assert run(capsys, "enrol", str(OBAMA2), "--name", "b", *o)[0] == OK
    keys = server_key_count(server)
    status, out, _ = run(capsys, "forget", "--yes", "--url", server.url, "--key-dir", str(key_dir))
    assert (status, out) == (OK, "fast head: deleted your keys and 2 templates from the server\n")
    assert server_key_count(server) == keys - 1


def test_a_template_under_the_other_head_is_named(monkeypatch, capsys):
    """`verify --name x` finds no x under this head's key: it says when x is enrolled under the other head."""
    from privface_core.errors import UnknownTemplateError

    class Client:
        def __init__(self, point: str) -> None:
            self.point = point

        def __enter__(self):
            return self

        def __exit__(self, *_):
            pass

        def verify(self, *_):
            raise UnknownTemplateError("unknown template")

        def connect_saved(self) -> bool:
            return True

        def templates(self) -> list[dict]:
            return [{"name": "x"}] if self.point == "accurate" else []

    monkeypatch.setattr(cli, "_client", lambda args, point=None: Client(point or args.point))
    monkeypatch.setattr(cli, "_encode_photos", lambda args: [None])
    monkeypatch.setattr(cli, "_connect", lambda args, client: None)
    status, _, err = run(capsys, "verify", str(OBAMA), "--name", "x", "--point", "fast")
    expected = (
        "no template named 'x' is enrolled under your fast key; one is under your accurate key: add --point accurate"
    )
    assert (status, err) == (FAILED, f"error: {expected}\n")


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("127.0.0.1:8000", "expected http://HOST[:PORT]"),
        ("http://127.0.0.1:8000/v1", "leave out /v1"),
        ("http://[::1", "Invalid IPv6 URL"),
    ],
    ids=["no-scheme", "api-path", "unparsable"],
)
def test_a_bad_url_is_a_usage_error_before_any_photo_is_read(url, reason, key_dir, capsys):
    status, out, err = run(capsys, "compare", str(OBAMA), "/no/such/photo.jpg", "--url", url, "--key-dir", str(key_dir))
    assert (status, out) == (USAGE, "") and err.startswith(f"error: --url {url}: ") and reason in err
    assert len(err.splitlines()) == 1


def test_help_usage_errors_list_and_delete_load_no_encoder_nor_for_help_the_fhe_runtime(tmp_path):
    """`--help` and usage errors in well under a second: no FHE runtime, torch or encoder loaded; list and
    delete (no photo) never load the encoder."""
    code = (
        "import sys\n"
        "from privface import cli\n"
        "def loaded():\n"
        "    names = {m.split('.')[0] for m in sys.modules}\n"
        "    return sorted(names & {'concrete', 'torch', 'client_encoder', 'onnxruntime', 'dlib', 'cv2'})\n"
        "for argv in (['--help'], ['compare', 'a.jpg'], ['compare', 'a.jpg', 'b.jpg', '--url', 'localhost:1']):\n"
        "    try:\n"
        "        cli.main(argv)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "print('usage', loaded())\n"
        f"cli.main(['list', '--point', 'fast', '--key-dir', {str(tmp_path)!r}])\n"
        f"cli.main(['delete', 'x', '--point', 'fast', '--key-dir', {str(tmp_path)!r}])\n"
        "print('list', sorted(set(loaded()) & {'client_encoder', 'dlib', 'cv2'}))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith(("usage ", "list "))]
    assert lines == ["usage []", "list []"], done.stdout[-2000:] + done.stderr[-2000:]


def test_list_and_delete_with_saved_keys_load_no_fhe_runtime(server, key_dir, capsys):
    """The key id (a hash of the evaluation keys) is cached beside the keys, so list and delete reach the server
    without loading concrete or torch; once the key files change, it is computed from them again."""
    o = opts(server, key_dir)
    assert run(capsys, "enrol", str(OBAMA), "--name", "cached", *o)[0] == OK
    [key_file] = key_dir.glob("*.keys")
    code = (
        "import sys\n"
        "from privface import cli\n"
        f"print('status', [cli.main([*command, *{o!r}]) for command in (['list'], ['delete', 'cached'], ['list'])])\n"
        "print('loaded', sorted({m.split('.')[0] for m in sys.modules} & {'concrete', 'torch', 'client_encoder'}))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False)
    lines = done.stdout.splitlines()
    assert lines[-2:] == ["status [0, 0, 0]", "loaded []"], done.stdout[-2000:] + done.stderr[-2000:]
    assert "deleted 'cached'" in lines and lines[-3] == "no templates enrolled under this key"
    cache = key_file.with_suffix(".keyid")
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600
    saved = json.loads(cache.read_text())
    os.utime(key_file, ns=(key_file.stat().st_atime_ns, key_file.stat().st_mtime_ns + 10**9))  # keys restored
    assert run(capsys, "list", *o)[:2] == (OK, "no templates enrolled under this key\n")
    again = json.loads(cache.read_text())
    assert again["key_id"] == saved["key_id"] and again["keys"] != saved["keys"]  # computed and cached anew


def test_an_interrupted_first_run_breaks_nothing_and_keys_are_private(server, key_dir, capsys):
    """A copy of the keys left by an interrupted run (the fixed name older versions saved under, or a temporary
    file of a killed writer) neither blocks the next run nor stays; an open folder is tightened; the server's
    log is private too."""
    circuit = json.loads((ARTIFACTS_ROOT / "fast" / "meta.json").read_text())["circuit_id"]
    key_dir.mkdir(mode=0o755)
    os.chmod(key_dir, 0o755)
    legacy = key_dir / f"{circuit}.tmp"
    killed = key_dir / f".{circuit}.keys.{2**22 + 1}.x1y2z3.tmp"  # above Linux's pid_max: nobody's
    for left in (legacy, killed):
        left.write_bytes(b"half-written keys")
        left.chmod(0o644)
    assert run(capsys, "enrol", str(OBAMA), "--name", "first", *opts(server, key_dir))[0] == OK
    names = sorted(p.name for p in key_dir.iterdir())
    # .photos: how many photos each template came from (picks the several-photo thresholds)
    assert names == [f"{circuit}.keyid", f"{circuit}.keys", f"{circuit}.photos", f"{circuit}.sign"]
    assert stat.S_IMODE(key_dir.stat().st_mode) == 0o700
    assert all(stat.S_IMODE((key_dir / n).stat().st_mode) == 0o600 for n in names)
    assert stat.S_IMODE((server.data_dir / "server.log").stat().st_mode) == 0o600


def test_server_unreachable_fails_with_one_line(key_dir, capsys):
    from privface.local_server import free_port

    url = f"http://127.0.0.1:{free_port()}"
    status, _, err = run(capsys, "compare", str(OBAMA), str(OBAMA2), "--url", url, "--key-dir", str(key_dir))
    assert status == FAILED and err.startswith("error: cannot reach the server") and len(err.splitlines()) == 1


class _NotPrivface(http.server.BaseHTTPRequestHandler):
    """A web server that is not ours: every request gets `answer` (status, content type, body)."""

    answer = (200, "text/html", b"<html><body>Welcome to nginx!</body></html>")

    def _reply(self) -> None:
        self.paths.append(self.path)
        length = int(self.headers.get("content-length") or 0)
        self.rfile.read(length)
        status, kind, body = self.answer
        self.send_response(status)
        self.send_header("content-type", kind)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_DELETE = _reply

    def log_message(self, *args) -> None:
        pass


@pytest.mark.parametrize(
    "answer",
    [
        (200, "text/html", b"<html><body>Welcome to nginx!</body></html>"),
        (200, "application/json", b"{}"),
        (200, "application/json", b"[1, 2]"),
        (302, "text/plain", b""),
        (501, "text/html", b"<!DOCTYPE HTML>\n<html>\n<body>\nUnsupported method\n</body>\n</html>\n"),
        (500, "application/json", b'{"detail": "boom\\n\\u001b[2J\\u001b[31mMATCH  mallory"}'),
    ],
    ids=["html", "empty-json", "json-list", "redirect", "html-error", "escape-codes"],
)
def test_a_server_that_is_not_privface_is_one_line_before_any_key_upload(answer, key_dir, capsys):
    handler = type("Handler", (_NotPrivface,), {"answer": answer, "paths": []})
    web = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=web.serve_forever, daemon=True).start()
    try:
        url = f"http://user:secret@127.0.0.1:{web.server_address[1]}"
        status, out, err = run(capsys, "compare", str(OBAMA), str(OBAMA2), "--url", url, "--key-dir", str(key_dir))
    finally:
        web.shutdown()
    assert status == FAILED and out == "" and len(err.splitlines()) == 1 and err.startswith("error: ")
    assert "secret" not in err and "\x1b" not in err  # no credentials, no terminal escape codes
    assert not any(path.startswith("/v1/keys") for path in handler.paths)  # no evaluation keys sent to it


@pytest.mark.parametrize(
    ("key_dir_arg", "message"),
    [("", "--key-dir is empty"), ("FILE", "is a file, not a folder")],
)
def test_a_key_dir_that_cannot_hold_keys_is_a_usage_error(key_dir_arg, message, tmp_path, capsys):
    if key_dir_arg == "FILE":
        key_dir_arg = str(tmp_path / "a-file")
        Path(key_dir_arg).write_text("x")
    status, _, err = run(capsys, "compare", str(OBAMA), str(OBAMA2), "--key-dir", key_dir_arg)
    assert status == USAGE and message in err and len(err.splitlines()) == 1


def test_corrupted_key_files_are_one_line(server, key_dir, capsys):
    o = opts(server, key_dir)
    assert run(capsys, "enrol", str(OBAMA), "--name", "k", *o)[0] == OK
    [key_file] = key_dir.glob("*.keys")
    good = key_file.read_bytes()
    for broken in (good[: len(good) // 2], b"", b"\x00" * 4096):
        key_file.write_bytes(broken)
        status, _, err = run(capsys, "list", *o)
        assert status == FAILED and "is corrupted or truncated" in err and len(err.splitlines()) == 1
    key_file.write_bytes(good)
    key_file.with_suffix(".sign").write_bytes(b"not a signing key")
    status, _, err = run(capsys, "list", *o)
    assert status == FAILED and "signing key file" in err and len(err.splitlines()) == 1


def test_several_faces_are_said(key_dir, capsys, tmp_path):
    from PIL import Image

    from privface.local_server import free_port

    two = Image.new("RGB", (1036, 518))  # the two example faces side by side (crops around their boxes)
    for x, (photo, box) in zip((0, 518), ((OBAMA, (236, 6, 754, 524)), (BIDEN, (312, 146, 830, 664))), strict=True):
        two.paste(Image.open(photo).convert("RGB").crop(box), (x, 0))
    path = tmp_path / "two.jpg"
    two.save(path)
    url = f"http://127.0.0.1:{free_port()}"
    status, _, err = run(capsys, "compare", str(path), str(OBAMA2), "--url", url, "--key-dir", str(key_dir))
    note, error = err.splitlines()
    assert note.startswith(f"note: {path}: 2 faces found") and status == FAILED
    assert error.startswith("error: cannot reach the server")


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


def test_enrol_from_several_photos_and_its_bad_inputs(server, key_dir, capsys, tmp_path):
    """One template from three photos of one person (issue 31); photos of two people, a photo without a face
    or more than ten photos are one line each and store nothing."""
    o = opts(server, key_dir)
    status, out, _ = run(capsys, "enrol", str(OBAMA), str(OBAMA2), str(OBAMA3), "--name", "three", *o)
    assert status == OK and out.startswith("enrolled 'three' (from 3 photos, ")
    assert run(capsys, "verify", str(OBAMA), "--name", "three", *o)[:2] == (OK, "Same person as 'three'\n")
    assert run(capsys, "verify", str(BIDEN), "--name", "three", *o)[:2] == (NEGATIVE, "Different people\n")
    status, _, err = run(capsys, "enrol", str(OBAMA), str(BIDEN), str(OBAMA2), "--name", "mixed", *o)
    assert status == FAILED and err.startswith(f"error: {BIDEN} does not look like the same person as the other")
    status, _, err = run(capsys, "enrol", str(OBAMA), str(CAT), "--name", "cat", *o)
    assert (status, err) == (FAILED, f"error: {CAT}: no face found in the image\n")
    status, _, err = run(capsys, "enrol", *[str(OBAMA)] * 11, "--name", "many", *o)
    assert status == FAILED and "an enrolment takes 1 to 10 photos, not 11" in err
    status, out, _ = run(capsys, "list", "--json", *o)
    assert [record["name"] for record in json.loads(out)] == ["three"]
