"""LFW View 2 scoring: 10 folds, each tested with the threshold that is best on the other 9."""

from __future__ import annotations

import numpy as np


def best_threshold(scores: np.ndarray, same: np.ndarray) -> float:
    """Threshold t maximising accuracy of "same person iff score < t" (scores are distances).

    Candidates are midpoints between consecutive sorted scores (plus both ends); ties go to the
    middle of the best run so the choice does not hug one training pair.
    """
    order = np.argsort(scores, kind="stable")
    s, y = np.asarray(scores, np.float64)[order], np.asarray(same, bool)[order]
    # Threshold below position k predicts "same" for the first k pairs.
    same_below = np.concatenate([[0], np.cumsum(y)])
    diff_above = (~y).sum() - np.concatenate([[0], np.cumsum(~y)])
    correct = same_below + diff_above
    best = np.flatnonzero(correct == correct.max())
    k = int(best[len(best) // 2])
    if k == 0:
        return float(s[0] - 1e-6)
    if k == len(s):
        return float(s[-1] + 1e-6)
    return float((s[k - 1] + s[k]) / 2.0)


def accuracy(scores: np.ndarray, same: np.ndarray, threshold: float) -> float:
    return float(np.mean((np.asarray(scores) < threshold) == np.asarray(same, bool)))


def ten_fold(scores: np.ndarray, same: np.ndarray, folds: np.ndarray) -> dict:
    """Per-fold accuracy with the threshold chosen on the other folds; mean, std, standard error."""
    scores, same, folds = np.asarray(scores, np.float64), np.asarray(same, bool), np.asarray(folds)
    per_fold, thresholds, errors = [], [], 0
    for fold in np.unique(folds):
        train = folds != fold
        t = best_threshold(scores[train], same[train])
        thresholds.append(t)
        per_fold.append(accuracy(scores[~train], same[~train], t))
        errors += int(np.sum((scores[~train] < t) != same[~train]))
    acc = np.array(per_fold)
    std = float(acc.std(ddof=1)) if len(acc) > 1 else 0.0
    return {
        "mean_accuracy": float(acc.mean()),
        "std": std,
        "standard_error": std / np.sqrt(len(acc)),
        "fold_accuracies": [round(float(a), 6) for a in acc],
        "fold_thresholds": [round(float(t), 6) for t in thresholds],
        "n_pairs": int(len(scores)),
        "n_errors": errors,
    }
