"""One error tree: every error class a user can meet ends in one clear line in both CLIs and the app."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from privface_core import errors
from privface_core.protocol import CODED_ERRORS, ErrorBody, error_from
from tests.conftest import ASTRONAUT, CAMERAMAN, CAT

USER_ERRORS = [
    errors.InvalidImageError("photo.jpg: not an image (or an unsupported format)"),
    errors.NoFaceError("photo.jpg: no face found in the image"),
    errors.ArtifactError("artifacts/fhe_head/accurate: missing server.zip"),
    errors.CiphertextError("result is corrupted or truncated"),
    errors.EvaluationKeyError("evaluation keys are corrupted or truncated"),
    errors.NotABitError("decrypted 7, not a bit"),
    errors.ServiceError("cannot reach the server at http://127.0.0.1:1", None),
]


def test_every_error_is_a_privface_error_in_its_branch():
    assert set(errors.__all__) == {name for name in dir(errors) if name.endswith("Error")}
    for err in USER_ERRORS:
        assert isinstance(err, errors.PrivfaceError)
    assert all(issubclass(c, errors.InputError) for c in (errors.InvalidImageError, errors.NoFaceError))
    assert all(
        issubclass(c, errors.CryptoError)
        for c in (errors.CiphertextError, errors.EvaluationKeyError, errors.NotABitError)
    )
    assert issubclass(errors.InputError, ValueError) and issubclass(errors.CryptoError, ValueError)
    assert errors.ServiceError("refused", 429).status == 429


@pytest.mark.parametrize("error", USER_ERRORS, ids=lambda e: type(e).__name__)
def test_privface_cli_prints_one_line_per_error(error, monkeypatch, capsys):
    from privface import cli

    class Failing:
        def __enter__(self):
            return self

        def __exit__(self, *_):
            return None

        def connect(self, progress=None):
            raise error

    monkeypatch.setattr(cli, "_client", lambda args: Failing())
    status = cli.main(["compare", str(ASTRONAUT), str(CAMERAMAN)])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 1
    assert err[-1] == f"error: {error}"
    assert not any("Traceback" in line for line in err)


def _onnx_model(path: Path, input_shape: list, output_op: str) -> Path:
    """A small valid ONNX model that is not a face encoder: `output_op` (Flatten, Identity) of its input."""
    from onnx import TensorProto, helper, save

    graph = helper.make_graph(
        [helper.make_node(output_op, ["chips"], ["out"])],
        "not-an-encoder",
        [helper.make_tensor_value_info("chips", TensorProto.FLOAT, input_shape)],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)],
    )
    save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        (lambda d: d / "notes.onnx", "ONNX Runtime cannot load it: Protobuf parsing failed.)"),
        (lambda d: _onnx_model(d / "rank.onnx", ["n", 10], "Identity"), "does not take chips [batch, 150, 150, 3]: "),
        (lambda d: _onnx_model(d / "flat.onnx", ["n", 150, 150, 3], "Flatten"), "not float [batch, 128]"),
    ],
    ids=["text-file", "wrong-input-rank", "wrong-output-shape"],
)
def test_encoder_cli_refuses_a_model_that_is_not_a_face_encoder(model, expected, tmp_path):
    (tmp_path / "notes.onnx").write_text("not a model")
    path = model(tmp_path)
    result = _encoder_cli("--model", str(path), "--tta", "none", "compare", str(ASTRONAUT), str(CAMERAMAN))
    assert result.returncode == 1 and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {path} is not a face encoder ("), result.stderr
    assert expected in lines[0] and "ONNXRuntimeError" not in lines[0] and len(lines[0]) < 250


def _encoder_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "client_encoder", *args], capture_output=True, text=True, timeout=300, check=False
    )


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--model", "/no/such/model.onnx", "compare", str(ASTRONAUT), str(CAMERAMAN)], "ONNX encoder not found"),
        (["--tta", "none", "compare", str(ASTRONAUT), "/no/such/photo.jpg"], "no such file"),
        (["--tta", "none", "compare", str(ASTRONAUT), str(CAT)], "no face"),
    ],
    ids=["errors.ArtifactError", "errors.InvalidImageError", "errors.NoFaceError"],
)
def test_encoder_cli_prints_one_line_per_error(args, expected):
    result = _encoder_cli(*args)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], result.stderr


APP = str(Path(__file__).parents[1] / "streamlit_app.py")


@pytest.mark.parametrize("error", USER_ERRORS[2:], ids=lambda e: type(e).__name__)
def test_app_shows_one_line_per_error(error, monkeypatch):
    """Crypto, artifact and service failures after the photos were encoded: a red line, no traceback."""
    AppTest = pytest.importorskip("streamlit.testing.v1").AppTest
    import streamlit as st

    from privface.client import VerificationClient

    def connect(self, progress=None):
        self.key_id = "0" * 32
        return self.key_id

    def fail(*_args, **_kwargs):
        raise error

    monkeypatch.setenv("PRIVFACE_URL", "http://127.0.0.1:9")  # never reached: the steps are replaced
    monkeypatch.setattr(VerificationClient, "connect", connect)
    monkeypatch.setattr(VerificationClient, "evaluation_key_bytes", property(lambda self: 1))
    monkeypatch.setattr(VerificationClient, "send_pair", fail)
    st.cache_resource.clear()
    try:
        app = AppTest.from_file(APP, default_timeout=300)
        app.run()
        app.selectbox[1].set_value("fast")
        app.button[0].click()
        app.run()
        assert not app.exception, app.exception
        assert [e.value for e in app.error] and all(str(error) in e.value for e in app.error)
    finally:
        st.cache_resource.clear()


def test_the_servers_refusals_are_service_errors_with_their_status():
    from privface_core.auth import ReplayCacheFull

    statuses = {errors.UnknownKeyError: 404, errors.UnknownTemplateError: 404, errors.TemplateExistsError: 409}
    statuses |= {errors.EvictedKeysError: 410, errors.RetiredCircuitError: 410, errors.QuotaError: 429}
    statuses |= {errors.AuthError: 401, ReplayCacheFull: 429}
    for kind, status in statuses.items():
        err = kind("refused")
        assert isinstance(err, errors.ServiceError) and err.status == status and err.args == ("refused",)


@pytest.mark.parametrize("kind", [*CODED_ERRORS.values(), errors.EvictedKeysError], ids=lambda k: k.__name__)
def test_a_refusal_travels_as_its_code_and_is_raised_again_as_its_class(kind):
    """The server's answer names the error's code; the client raises the same class from it (a caller acts on
    the type: "keys gone" is not told from "no such template" by the message or the status)."""
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from fhe_head.service.app import _register_errors

    app = FastAPI()
    _register_errors(app)

    @app.get("/refuse")
    def refuse() -> None:
        raise kind("refused on purpose")

    response = TestClient(app).get("/refuse")
    body = ErrorBody.model_validate_json(response.content)
    assert (response.status_code, body.detail, body.code) == (kind.status, "refused on purpose", kind.code)
    again = error_from(response.status_code, body.detail, body.code)
    assert type(again) is kind and again.status == kind.status
    assert isinstance(again, errors.KeysGoneError) == issubclass(kind, errors.KeysGoneError)


def test_an_answer_without_a_code_is_a_plain_service_error():
    err = error_from(404, "Not Found", None)
    assert type(err) is errors.ServiceError and err.status == 404
