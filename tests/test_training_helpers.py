"""The training library modules on synthetic embeddings (fast, no LFW): pairs, folds, rounding, Markdown."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fhe_head.head import round_half_up
from training.bench.markdown import fmt_s, table_header
from training.embeddings import ImageEmbeddings
from training.folds import fit_without_fold, view2_folds
from training.head_fit import HeadConfig
from training.lfw import Pair
from training.pairs import PairData, folds, labels


def _synthetic(n_people_per_fold: int = 6, seed: int = 0) -> tuple[list[Pair], PairData]:
    """10 person-disjoint folds; each person two photos near their own point of a 6-d subspace."""
    rng = np.random.default_rng(seed)
    basis = rng.normal(size=(128, 6))
    pairs, paths, views = [], [], []
    for fold in range(10):
        people = [f"f{fold}p{i}" for i in range(n_people_per_fold)]
        for person in people:
            centre = basis @ rng.normal(size=6)
            for k in range(2):
                paths.append(Path(person) / f"{k}.jpg")
                views.append(centre + 0.3 * rng.normal(size=(2, 128)))
        for i, person in enumerate(people):
            other = people[(i + 1) % len(people)]
            pairs.append(Pair(Path(person) / "0.jpg", Path(person) / "1.jpg", True, fold))
            pairs.append(Pair(Path(person) / "0.jpg", Path(other) / "1.jpg", False, fold))
    emb = ImageEmbeddings(np.array(views, np.float32), ["hog"] * len(paths), paths)
    return pairs, PairData(emb, tta="flip")


def test_pair_data_looks_up_both_sides_and_their_distance() -> None:
    pairs, data = _synthetic()
    a, b, same, images = data.arrays(pairs[:4])
    assert a.shape == b.shape == (4, 128) and images.shape == (5, 128)  # each photo once
    assert same.tolist() == [True, False, True, False] == labels(pairs[:4]).tolist()
    np.testing.assert_allclose(data.distances(pairs[:4]), np.linalg.norm(a - b, axis=1))
    assert set(folds(pairs).tolist()) == set(range(10))


def test_a_fold_is_tested_on_a_head_fitted_without_it() -> None:
    pairs, data = _synthetic()
    params = fit_without_fold(data, pairs, HeadConfig(8), fold=3)
    _, _, _, outside = data.arrays([p for p in pairs if p.fold != 3])
    _, _, _, everything = data.arrays(pairs)
    np.testing.assert_allclose(params.mean, outside.mean(axis=0), rtol=1e-5)
    assert not np.allclose(params.mean, everything.mean(axis=0), rtol=1e-5)


def test_view2_folds_reports_ten_folds_of_a_learnable_problem() -> None:
    pairs, data = _synthetic()
    result = view2_folds(data, pairs, HeadConfig(8), with_simulation=False)
    assert len(result["fold_accuracies_clear_quantised"]) == len(result["fold_thresholds"]) == 10
    assert result["accuracy_clear_quantised"] > 0.9


def test_rounding_goes_half_up_to_multiples_of_two_to_the_lsbs() -> None:
    sums = np.array([0, 7, 8, 9, 23, 24])
    assert round_half_up(sums, 4).tolist() == [0, 0, 16, 16, 16, 32]
    assert round_half_up(sums, 0).tolist() == sums.tolist()


def test_markdown_helpers() -> None:
    assert table_header("a | b | c") == ["| a | b | c |", "|---|---|---|"]
    assert [fmt_s(s) for s in (None, 0.0123, 1.5, 90.0)] == ["—", "12.3 ms", "1.50 s", "1.5 min"]
