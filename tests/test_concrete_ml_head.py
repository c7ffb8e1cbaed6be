"""The Concrete-ML build of the head (fhe_head.concrete_ml_head, the shipped engine) on a small toy head with a
level element: bit-exact against the integer model in simulation and in real FHE through the project's
FHEClient / FHEServer (FHEModelClient / FHEModelServer inside), each input encrypted alone, templates and probes
interchangeable, bad input refused with the project's errors."""

import contextlib

import numpy as np
import pytest

from fhe_head import concrete_ml_head
from fhe_head.artifacts import CONCRETE_ML, wrap
from fhe_head.build import save_artifacts
from fhe_head.client import FHEClient
from fhe_head.formats import PointFormats
from fhe_head.head import HeadParams
from fhe_head.server import FHEServer
from privface_core.errors import CiphertextError, EvaluationKeyError, NotABitError
from tests.toy_heads import toy_head
from training.bench.engines import boundary_pairs
from training.head_fit import HeadConfig
from training.level_element import add_levels, raw_threshold


def _toy_head(seed: int, dims: int = 6) -> HeadParams:
    """A toy head (4-bit inputs, 8-level tables, one bit rounded off the sum) with three security levels
    (raw-sum thresholds the toy's sums reach: its own, and two looser ones)."""
    params, _ = toy_head(seed, HeadConfig(dims, clip_sigma=3.0, levels=8, saturation=0.15, target_bits=5), noise=0.35)
    base = raw_threshold(params)
    return add_levels(params, {"loose": base + 6, "looser": base + 3, "own": base})


def _pairs(params: HeadParams, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`n` random pairs plus ~`n` pairs whose raw sum sits at the decision boundary (the rounding decides them)."""
    rng = np.random.default_rng(seed)
    a, b = (rng.integers(params.q_min, params.q_max + 1, (n, params.vector_length)) for _ in range(2))
    near_a, near_b = boundary_pairs(params, n, seed)
    return np.vstack([a, near_a]), np.vstack([b, near_b])


@pytest.fixture(scope="module")
def toy():
    params = _toy_head(0)
    return params, concrete_ml_head.compile_head(params)


@pytest.fixture(scope="module")
def deployed(toy, tmp_path_factory):
    params, quantized = toy
    directory = tmp_path_factory.mktemp("cml") / "toy"
    meta = save_artifacts(params, directory, "e" * 64, engine=CONCRETE_ML, compiled=quantized)
    assert meta["engine"] == CONCRETE_ML and (directory / "client.zip").is_file()
    client = FHEClient(directory)
    client.generate_keys()
    server = FHEServer(directory)
    return params, directory, client, server, server.load_evaluation_keys(client.evaluation_keys())


def test_torch_module_is_the_integer_model(toy):
    import torch

    params, _ = toy
    a, b = _pairs(params, 100, 0)
    with torch.no_grad():
        out = concrete_ml_head.IntegerHeadModule(params).eval()(torch.tensor(a).float(), torch.tensor(b).float())
    np.testing.assert_array_equal(out.numpy().ravel(), params.decide(a, b))


def test_simulation_is_bit_exact_including_near_the_threshold(toy):
    params, quantized = toy
    a, b = _pairs(params, 150, 1)
    assert np.sum(np.abs(params.score(a, b) - raw_threshold(params)) <= 1 << params.lsbs) >= 120
    simulated = quantized.forward(a.astype(float), b.astype(float), fhe="simulate").ravel()
    np.testing.assert_array_equal(simulated, params.decide(a, b))


def test_one_lookup_per_element_plus_rounding_and_decision(toy):
    params, quantized = toy
    report = concrete_ml_head.circuit_report(quantized)
    # one lookup per element, `lsbs` for the exact rounding, one for the decision
    assert report["programmable_bootstrap_count"] == params.vector_length + params.lsbs + 1
    assert report["max_bit_width"] <= 6


def test_real_fhe_of_the_deployed_roles_is_the_integer_model(deployed):
    params, _, client, server, keys = deployed
    a, b = _pairs(params, 2, 2)  # two random pairs, then two either side of the boundary
    for qa, qb in zip(a[:4], b[:4], strict=True):
        template, probe = client.encrypt_vector(qa), client.encrypt_vector(qb)  # each alone
        assert client.decrypt(server.run(template, probe, keys)) == bool(params.decide(qa, qb))
    assert client.decrypt(server.run(client.encrypt_vector(a[0]), client.encrypt_vector(a[0]), keys)) is True


def test_templates_and_probes_are_interchangeable(deployed):
    """FHEClient encrypts every vector as input 0; FHEModelClient's own input-1 ciphertext of the same vector has
    the same exact format and gives the same answers in either role: both inputs share one encoding."""
    params, directory, client, server, keys = deployed
    a, b = _pairs(params, 1, 5)
    second = wrap(client.meta, client._model.quantize_encrypt_serialize(None, b[1].astype(float)[None, :])[1])
    PointFormats.load(directory, client.meta).check_ciphertext(second)
    first = client.encrypt_vector(a[1])
    expected = bool(params.decide(a[1], b[1]))
    assert client.decrypt(server.run(first, second, keys)) == expected
    assert client.decrypt(server.run(second, first, keys)) == expected


def test_bad_vectors_are_refused_before_encryption(deployed):
    params, _, client, _, _ = deployed
    with pytest.raises(ValueError, match="length"):
        client.encrypt_vector(np.zeros(params.vector_length + 1))
    with pytest.raises(ValueError, match="lie in"):
        client.encrypt_vector(np.full(params.vector_length, params.q_max + 1))


def test_corrupted_and_foreign_ciphertexts_and_keys_are_refused(deployed, tmp_path):
    params, _, client, server, keys = deployed
    good = client.encrypt_vector(np.zeros(params.vector_length, np.int64))
    probe = client.encrypt_vector(np.ones(params.vector_length, np.int64))
    with pytest.raises(CiphertextError, match="truncated"):
        server.run(good[:6], probe, keys)
    with pytest.raises(CiphertextError, match="not a privface ciphertext"):
        server.run(b"X" * len(good), probe, keys)
    with pytest.raises(CiphertextError):
        server.run(good[:12] + b"\x00" * (len(good) - 12), probe, keys)
    with pytest.raises(CiphertextError):
        server.run(good, probe[: len(probe) // 2], keys)
    serialized = client.evaluation_keys()
    with pytest.raises(EvaluationKeyError):
        server.load_evaluation_keys(serialized[: len(serialized) // 3])
    with pytest.raises(EvaluationKeyError):
        server.load_evaluation_keys(b"nonsense")
    with pytest.raises(CiphertextError):
        client.decrypt(server.run(good, probe, keys)[:20])
    # the framing of another circuit id: refused before concrete parses it
    other = {"circuit_id": "0" * 16}
    with pytest.raises(CiphertextError, match="another head circuit"):
        server.run(wrap(other, b"payload"), probe, keys)


def test_another_clients_keys_give_a_garbage_bit_or_an_error(deployed):
    """TFHE cannot tell keys apart: a stranger's decryption is meaningless (NotABitError when not 0/1)."""
    params, directory, client, server, keys = deployed
    stranger = FHEClient(directory)
    stranger.generate_keys()
    zero = np.zeros(params.vector_length, np.int64)
    result = server.run(client.encrypt_vector(zero), client.encrypt_vector(zero), keys)
    with contextlib.suppress(NotABitError):
        assert stranger.decrypt(result) in (True, False)


def test_a_largest_sum_that_rounds_past_its_width_is_still_exact():
    """Concrete-ML rounds without overflow protection: unshifted, the largest sum (2**bits - 1) would wrap to a
    small one ("same person"); the build shifts the sum down by a multiple of 2**lsbs and stays exact."""
    params = _toy_head(0)
    assert params.lsbs >= 1
    top = params.tables.max(axis=1).sum()
    tables = params.tables.copy()
    tables[0, tables[0] == tables[0].max()] += (1 << int(top).bit_length()) - 1 - top
    wide = HeadParams(**{**params.__dict__, "tables": tables, "threshold": 1 << int(top).bit_length()})
    assert concrete_ml_head.sum_shift(wide) > 0
    quantized = concrete_ml_head.compile_head(wide)
    deltas = np.arange(-wide.offset, wide.offset + 1)[wide.tables.argmax(axis=1)]
    largest = np.clip(deltas, 0, None) + wide.q_min
    a, b = _pairs(wide, 50, 4)
    a, b = np.vstack([a, largest]), np.vstack([b, largest - deltas])
    assert wide.score(a[-1], b[-1]) == wide.max_sum and wide.decide(a[-1], b[-1]) == 0
    simulated = quantized.forward(a.astype(float), b.astype(float), fhe="simulate").ravel()
    np.testing.assert_array_equal(simulated, wide.decide(a, b))


def test_a_sum_rounded_below_the_differences_width_is_still_exact():
    """Concrete-ML's one rounding threshold would round the 5-bit differences too when the sum keeps fewer
    bits: the build then rounds the sum alone, and stays bit-exact."""
    params, _ = toy_head(3, HeadConfig(4, clip_sigma=3.0, levels=8, saturation=0.15, target_bits=3), noise=0.35)
    assert params.lsbs >= 2 and concrete_ml_head.rounding_threshold(params) is None
    quantized = concrete_ml_head.compile_head(params)
    a, b = _pairs(params, 100, 3)
    simulated = quantized.forward(a.astype(float), b.astype(float), fhe="simulate").ravel()
    np.testing.assert_array_equal(simulated, params.decide(a, b))
    assert concrete_ml_head.circuit_report(quantized)["programmable_bootstrap_count"] == 4 + params.lsbs + 1
