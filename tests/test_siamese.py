"""The siamese head trained with torch + Brevitas: seeded, its Brevitas tower is the client's quantiser,
and its exported integer model is what Concrete simulates and runs in real FHE."""

import numpy as np
import pytest
import torch

from fhe_head.build import save_artifacts
from fhe_head.circuit import compile_head
from fhe_head.client import FHEClient
from fhe_head.server import FHEServer
from training.head_fit import HeadConfig, accuracy_of
from training.heads import config_from_dict, fit
from training.siamese import SiameseConfig, export, integer_quantiser, train

CONFIG = SiameseConfig(8, n_bits=4, levels=8, target_bits=5, clip_sigma=3.0, saturation=0.15, steps=60)


def _people(seed: int, n: int = 600):
    """Synthetic identities whose useful directions are not the top principal axes: training must find them."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(60, 128)) * np.r_[np.full(16, 1.0), np.full(112, 0.15)]
    nuisance = rng.normal(size=(n, 128)) * np.r_[np.full(16, 0.45), np.full(112, 0.6)]
    people = rng.integers(0, 60, n)
    faces = centres[people] + nuisance
    i, j = rng.integers(0, n, (2, 1000))
    j[:500] = [rng.choice(np.flatnonzero(people == people[k])) for k in i[:500]]
    return faces, faces[i], faces[j], people[i] == people[j]


@pytest.fixture(scope="module")
def trained():
    faces, a, b, same = _people(0)
    model, start = train(CONFIG, faces, a, b, same)
    return faces, a, b, same, model, start, export(model, start, CONFIG, a, b, same, "toy-siamese")


def test_the_integer_quantiser_outputs_the_signed_integers_themselves():
    q = integer_quantiser(4).double()
    x = torch.tensor([-20.0, -8.4, -3.2, 0.0, 2.7, 6.6, 7.4, 30.0], dtype=torch.float64, requires_grad=True)
    y = q(x)
    assert y.tolist() == [-8, -8, -3, 0, 3, 7, 7, 7]
    y.sum().backward()  # straight through inside the range, nothing outside it
    assert x.grad.tolist() == [0, 1, 1, 1, 1, 1, 1, 0]


def test_training_is_seeded_and_recorded_configurations_come_back(trained):
    faces, a, b, same, _, _, params = trained
    again = fit(CONFIG, faces, a, b, same, name="toy-siamese")
    assert np.array_equal(again.tables, params.tables) and again.threshold == params.threshold
    assert np.array_equal(again.projection, params.projection)
    assert config_from_dict(CONFIG.to_dict()) == CONFIG
    assert config_from_dict(HeadConfig(8).to_dict()) == HeadConfig(8)


def test_the_tower_is_the_clients_quantisation_and_the_tables_its_distances(trained):
    faces, _, _, _, model, _, params = trained
    with torch.no_grad():
        tower = model.tower(torch.tensor(faces[:200], dtype=torch.float64)).numpy()
    # float32 storage of the projection may move a value sitting on a rounding boundary, nothing else
    assert np.mean(tower == params.quantize(faces[:200])) > 0.999
    assert params.tables.min() >= 0 and params.tables.max() <= CONFIG.levels - 1
    assert np.array_equal(params.tables, params.tables[:, ::-1])  # symmetric: a template may be either side


def test_training_improves_on_the_hand_set_start(trained):
    _, _, _, _, _, start, params = trained
    faces, a, b, same = _people(1)  # other people, same population
    assert accuracy_of(params, a, b, same) > accuracy_of(start, a, b, same) + 0.01


def test_integer_model_equals_simulation_and_real_fhe(trained, tmp_path):
    faces, a, b, _, _, _, params = trained
    qa, qb = params.quantize(a[:40]), params.quantize(b[:40])
    circuit = compile_head(params)
    expected = params.decide(qa, qb)
    assert [int(circuit.simulate(x, y)) for x, y in zip(qa, qb, strict=True)] == expected.tolist()
    save_artifacts(params, tmp_path / "head", "e" * 64)
    client, server = FHEClient(tmp_path / "head"), FHEServer(tmp_path / "head")
    client.generate_keys()
    keys = server.load_evaluation_keys(client.evaluation_keys())
    for i in range(4):
        answer = server.run(client.encrypt(a[i]), client.encrypt(b[i]), keys)
        assert client.decrypt(answer) == bool(expected[i])
