"""The shipped `accurate` head on real LFW faces: real FHE on a sample, simulation on a full fold."""

import numpy as np
import pytest

from fhe_head.artifacts import ARTIFACTS_ROOT
from fhe_head.circuit import compile_head
from fhe_head.client import FHEClient
from fhe_head.server import FHEServer

pytestmark = pytest.mark.skipif(
    not (ARTIFACTS_ROOT / "accurate" / "meta.json").is_file(), reason="no shipped head (python -m training.train_head)"
)


@pytest.fixture(scope="module")
def fold0_vectors(fold0_shipped):
    pairs, emb = fold0_shipped
    vectors = dict(zip(emb.paths, emb.vectors, strict=True))
    a = np.array([vectors[p.left] for p in pairs])
    b = np.array([vectors[p.right] for p in pairs])
    return a, b, np.array([p.same for p in pairs])


def test_real_fhe_on_20_pairs_agrees_with_simulation_and_clear(fold0_vectors):
    a, b, _ = fold0_vectors
    client, server = FHEClient("accurate"), FHEServer("accurate")
    client.generate_keys()
    keys = server.load_evaluation_keys(client.evaluation_keys())
    circuit = compile_head(client.head)
    picks = list(range(10)) + list(range(300, 310))  # 10 same-person, 10 different-person pairs
    for i in picks:
        qa, qb = client.head.quantize(a[i]), client.head.quantize(b[i])
        fhe_bit = client.decrypt(server.run(client.encrypt(a[i]), client.encrypt(b[i]), keys))
        assert int(fhe_bit) == int(circuit.simulate(qa, qb)) == int(client.head.decide(qa, qb))


def test_simulation_on_a_full_fold(fold0_vectors):
    a, b, same = fold0_vectors
    client = FHEClient("accurate")
    head = client.head
    circuit = compile_head(head)
    qa, qb = head.quantize(a), head.quantize(b)
    simulated = np.array([int(circuit.simulate(x, y)) for x, y in zip(qa, qb, strict=True)])
    np.testing.assert_array_equal(simulated, head.decide(qa, qb))
    # The shipped head saw this fold in training (it is fitted on all 6000 pairs): a sanity
    # floor, not the held-out figure (that one is training.eval_fhe's).
    assert np.mean(simulated == same) >= 0.985
