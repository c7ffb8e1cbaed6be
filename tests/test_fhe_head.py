"""The FHE head's client/server roles on a small compiled circuit (d = 8), built by each engine (Concrete-ML, the
shipped one, and the direct concrete-python circuit) behind the same FHEClient / FHEServer: separate encryption,
agreement of FHE, simulation and the clear integer model, and every kind of bad input."""

import ast
import contextlib
import json
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fhe_head.artifacts import ARTIFACTS_ROOT, ENGINES, POINTS
from fhe_head.build import save_artifacts
from fhe_head.circuit import compile_head
from fhe_head.client import FHEClient
from fhe_head.head import HeadParams
from fhe_head.server import FHEServer
from privface_core.errors import ArtifactError, CiphertextError, EvaluationKeyError, NotABitError
from tests.toy_heads import toy_head
from training.head_fit import HeadConfig

ENCODER_SHA = "e" * 64


def _toy_head(seed: int, dims: int = 8) -> tuple[HeadParams, np.ndarray]:
    config = HeadConfig(dims, clip_sigma=3.0, levels=8, saturation=0.15, target_bits=5)
    return toy_head(seed, config, noise=0.35)


@pytest.fixture(scope="module", params=ENGINES)
def toy(request, tmp_path_factory):
    params, faces = _toy_head(0)
    directory = tmp_path_factory.mktemp("head") / "toy"
    assert save_artifacts(params, directory, ENCODER_SHA, engine=request.param)["engine"] == request.param
    return params, faces, directory


@pytest.fixture(scope="module")
def keyed(toy, tmp_path_factory):
    params, faces, directory = toy
    client = FHEClient(directory, key_dir=tmp_path_factory.mktemp("keys"), encoder_sha256=ENCODER_SHA)
    client.generate_keys()
    server = FHEServer(directory)
    return client, server, server.load_evaluation_keys(client.evaluation_keys())


def test_template_and_probe_are_encrypted_separately_and_compared(toy, keyed):
    params, faces, _ = toy
    client, server, keys = keyed
    template = client.encrypt(faces[0])  # at enrolment
    for probe_face in (faces[0] + 0.01, faces[1], faces[2]):  # later, one probe at a time
        probe = client.encrypt(probe_face)
        expected = params.decide(params.quantize(faces[0]), params.quantize(probe_face))
        assert client.decrypt(server.run(template, probe, keys)) == bool(expected)
    assert client.decrypt(server.run(template, client.encrypt(faces[0]), keys)) is True


def test_fhe_agrees_with_simulation_and_clear_model(toy, keyed):
    params, faces, _ = toy
    client, server, keys = keyed
    circuit = compile_head(params)
    rng = np.random.default_rng(1)
    for i, j in rng.integers(0, len(faces), (12, 2)):
        qa, qb = params.quantize(faces[i]), params.quantize(faces[j])
        clear = int(params.decide(qa, qb))
        assert int(circuit.simulate(qa, qb)) == clear
        assert int(client.decrypt(server.run(client.encrypt(faces[i]), client.encrypt(faces[j]), keys))) == clear


def test_ciphertexts_and_keys_are_compact(keyed, toy):
    client, _, _ = keyed
    assert len(client.encrypt(toy[1][0])) < 4_000  # compressed input ciphertext
    assert len(client.evaluation_keys()) < 150e6


@pytest.mark.parametrize("point", POINTS)
def test_shipped_points_keys_fit_the_upload_budget(point):
    """Every shipped point's evaluation keys (what a client uploads once) stay within 60 MB."""
    if not (ARTIFACTS_ROOT / point / "meta.json").is_file():
        pytest.skip(f"no shipped {point} head (python -m training.train_head)")
    client = FHEClient(point)
    client.generate_keys()
    assert len(client.evaluation_keys()) <= 60e6


def test_corrupted_truncated_and_foreign_ciphertexts_are_refused(toy, keyed, tmp_path):
    _, faces, _ = toy
    client, server, keys = keyed
    good = client.encrypt(faces[0])
    with pytest.raises(CiphertextError, match="truncated"):
        server.run(good[:6], good, keys)
    with pytest.raises(CiphertextError, match="not a privface ciphertext"):
        server.run(b"X" * len(good), good, keys)
    with pytest.raises(CiphertextError):
        server.run(good[:12] + b"\x00" * (len(good) - 12), good, keys)
    with pytest.raises(CiphertextError):
        server.run(good[: len(good) // 2], good, keys)
    other_params, _ = _toy_head(5)
    other_dir = tmp_path / "other"
    save_artifacts(other_params, other_dir, ENCODER_SHA)
    other = FHEClient(other_dir)
    other.generate_keys()
    with pytest.raises(CiphertextError, match="another head circuit"):
        server.run(other.encrypt(faces[0]), good, keys)


def test_corrupted_evaluation_keys_are_refused(keyed):
    client, server, _ = keyed
    serialized = client.evaluation_keys()
    with pytest.raises(EvaluationKeyError):
        server.load_evaluation_keys(serialized[: len(serialized) // 3])
    with pytest.raises(EvaluationKeyError):
        server.load_evaluation_keys(b"nonsense")


def test_another_keys_give_a_garbage_bit_or_an_error_never_a_crash(toy, keyed):
    """Documented behaviour: TFHE cannot tell keys apart; the decrypted value is meaningless,
    and when it is not 0/1 the client says so (NotABitError)."""
    params, faces, directory = toy
    client, server, keys = keyed
    stranger = FHEClient(directory)
    stranger.generate_keys()
    result = server.run(client.encrypt(faces[0]), client.encrypt(faces[0]), keys)
    with contextlib.suppress(NotABitError):
        assert stranger.decrypt(result) in (True, False)
    foreign_keys = server.load_evaluation_keys(stranger.evaluation_keys())
    with contextlib.suppress(NotABitError):
        client.decrypt(server.run(client.encrypt(faces[0]), client.encrypt(faces[1]), foreign_keys))


def test_secret_keys_are_private_files_and_reloaded(toy, tmp_path):
    _, faces, directory = toy
    first = FHEClient(directory, key_dir=tmp_path / "keys")
    first.generate_keys()
    key_file = first.key_file
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    again = FHEClient(directory, key_dir=tmp_path / "keys")
    again.generate_keys()  # loads, does not regenerate
    server = FHEServer(directory)
    result = server.run(first.encrypt(faces[3]), first.encrypt(faces[3]), first.evaluation_keys())
    assert again.decrypt(result) is True


def test_encrypting_before_loading_keys_uses_the_key_files_keys(toy, tmp_path):
    """The runtime makes throw-away keys for an encryption asked before any keys exist: a ciphertext
    made that way decrypted to a valid-looking wrong bit under the key directory's keys."""
    _, faces, directory = toy
    first = FHEClient(directory, key_dir=tmp_path / "keys")
    first.generate_keys()
    late = FHEClient(directory, key_dir=tmp_path / "keys")
    a, b = late.encrypt(faces[3]), late.encrypt(faces[3])  # no generate_keys() first
    result = FHEServer(directory).run(a, b, first.evaluation_keys())
    assert first.decrypt(result) is True and late.evaluation_keys() == first.evaluation_keys()


def test_a_process_with_a_server_keeps_its_exit_status(toy):
    """Concrete's runtime, once started, used to end every process with status 0 (a service that failed to
    start, an evaluation that failed: all 'succeeded')."""
    _, _, directory = toy
    code = f"import sys; from fhe_head.server import FHEServer; FHEServer({str(directory)!r}); sys.exit(3)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=300, check=False)
    assert done.returncode == 3, done.stderr[-500:]


def test_artifacts_are_checked_at_load(toy, tmp_path):
    _, _, directory = toy
    with pytest.raises(ArtifactError, match="another encoder"):
        FHEClient(directory, encoder_sha256="0" * 64)
    stale = tmp_path / "stale"
    stale.mkdir()
    for name in ("server.zip", "client.specs.json", "head.json"):
        (stale / name).write_bytes((directory / name).read_bytes())
    meta = json.loads((directory / "meta.json").read_text())
    (stale / "meta.json").write_text(json.dumps({**meta, "concrete_python_version": "0.0.1"}))
    with pytest.raises(ArtifactError, match="rebuild"):
        FHEServer(stale)
    if meta["engine"] == "concrete-ml":
        (stale / "meta.json").write_text(json.dumps({**meta, "concrete_ml_version": "0.0.1"}))
        with pytest.raises(ArtifactError, match="concrete-ml 0.0.1.*rebuild"):
            FHEServer(stale)
    (stale / "meta.json").write_text(json.dumps({**meta, "engine": "tfhe-rs"}))
    with pytest.raises(ArtifactError, match="unknown engine"):
        FHEServer(stale)
    with pytest.raises(ArtifactError, match="no FHE head artifacts"):
        FHEClient(tmp_path / "nowhere")


def test_bad_embeddings_are_refused_before_encryption(keyed):
    client, _, _ = keyed
    with pytest.raises(ValueError, match="shape"):
        client.encrypt(np.zeros(64))
    with pytest.raises(ValueError, match="finite"):
        client.encrypt(np.full(128, np.nan))


def test_server_module_cannot_decrypt():
    tree = ast.parse((Path(__file__).parents[1] / "fhe_head" / "server.py").read_text())
    imported = {
        alias.name if isinstance(node, ast.Import) else f"{node.module}.{alias.name}"
        for node in ast.walk(tree)
        if isinstance(node, (ast.Import, ast.ImportFrom))
        for alias in node.names
    }
    assert not any("client" in name.lower() or name.endswith(".fhe") for name in imported), imported
    used = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    used |= {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    assert not {"decrypt", "generate", "Client", "Keys", "FHEModelClient"} & used


def test_artifacts_without_an_engine_are_the_direct_circuit(toy, keyed, tmp_path):
    """Folders written before the engine field (all concrete-python) still load, as concrete-python."""
    params, faces, directory = toy
    meta = json.loads((directory / "meta.json").read_text())
    if meta["engine"] != "concrete-python":
        pytest.skip("a concrete-python folder's question")
    old = tmp_path / "old"
    shutil.copytree(directory, old)
    (old / "meta.json").write_text(json.dumps({k: v for k, v in meta.items() if k != "engine"}))
    client, server = FHEClient(old), FHEServer(old)
    assert client.engine == server.engine == "concrete-python"
    client.generate_keys()
    result = server.run(client.encrypt(faces[0]), client.encrypt(faces[0]), client.evaluation_keys())
    assert client.decrypt(result) is True


def test_clear_model_rounding_matches_its_definition():
    params, faces = _toy_head(2)
    qa, qb = params.quantize(faces[:50]), params.quantize(faces[50:100])
    s = params.score(qa, qb)
    step = 2**params.lsbs
    rounded = np.floor(s / step + 0.5) * step
    np.testing.assert_array_equal(params.decide(qa, qb), (rounded < params.threshold).astype(int))
    assert (
        HeadParams.from_json(json.loads(json.dumps(params.to_json()))).decide(qa, qb).tolist()
        == params.decide(qa, qb).tolist()
    )


@pytest.mark.parametrize("engine", ENGINES)
def test_a_multi_parameter_build_decides_as_the_integer_model(engine, tmp_path):
    """`strategy` reaches concrete through either engine (a key set per precision), is recorded in meta.json,
    and the build still computes the integer model's decision through the client / server roles."""
    from concrete import fhe

    params, faces = _toy_head(3)
    meta = save_artifacts(
        params, tmp_path / "multi", ENCODER_SHA, engine=engine, strategy=fhe.ParameterSelectionStrategy.MULTI
    )
    assert meta["parameter_selection_strategy"] == "multi"
    client = FHEClient(tmp_path / "multi", key_dir=tmp_path / "keys", encoder_sha256=ENCODER_SHA)
    client.generate_keys()
    server = FHEServer(tmp_path / "multi")
    keys = server.load_evaluation_keys(client.evaluation_keys())
    rng = np.random.default_rng(2)
    for i, j in rng.integers(0, len(faces), (6, 2)):
        expected = bool(params.decide(params.quantize(faces[i]), params.quantize(faces[j])))
        assert client.decrypt(server.run(client.encrypt(faces[i]), client.encrypt(faces[j]), keys)) == expected
    assert client.decrypt(server.run(client.encrypt(faces[0]), client.encrypt(faces[0]), keys)) is True
