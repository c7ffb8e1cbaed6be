import numpy as np

from training.protocol import accuracy, best_threshold, ten_fold


def test_best_threshold_separates_separable_scores():
    scores = np.array([0.1, 0.2, 0.3, 0.7, 0.8, 0.9])
    same = np.array([True, True, True, False, False, False])
    t = best_threshold(scores, same)
    assert 0.3 < t < 0.7 and accuracy(scores, same, t) == 1.0


def test_best_threshold_handles_all_same_or_all_different():
    scores = np.array([0.5, 0.6])
    assert best_threshold(scores, np.array([True, True])) > 0.6
    assert best_threshold(scores, np.array([False, False])) < 0.5


def test_each_fold_is_scored_with_a_threshold_chosen_without_it():
    rng = np.random.default_rng(1)
    folds = np.repeat(np.arange(10), 60)
    same = np.tile(np.repeat([True, False], 30), 10)
    scores = np.where(same, 0.4, 0.8) + rng.normal(0, 0.01, same.size)
    # Fold 3 alone has its "different" pairs at 0.5: a threshold fitted on it would score 100%,
    # the one from the other folds (~0.6) does not -> the protocol must not peek.
    scores[(folds == 3) & ~same] = 0.5
    result = ten_fold(scores, same, folds)
    assert 0.55 < result["fold_thresholds"][3] < 0.65
    assert result["fold_accuracies"][3] == 0.5 and result["n_errors"] == 30
    assert len(result["fold_accuracies"]) == 10 and result["n_pairs"] == 600
    assert abs(result["mean_accuracy"] - 0.95) < 1e-9
