"""The head under LFW View 2's protocol: for each fold, fitted on the other 9, tested on it."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from tqdm import tqdm

from fhe_head.circuit import compile_head
from fhe_head.head import HeadParams
from training.head_fit import HeadConfig, best_rounded_threshold
from training.heads import fit
from training.lfw import Pair
from training.pairs import PairData, folds


def fit_without_fold(
    data: PairData, pairs: list[Pair], config: HeadConfig, fold: int | frozenset[int], name: str = "head"
) -> HeadParams:
    """The head fitted on every pair (and its images) outside `fold` (or outside a set of folds)."""
    without = fold if isinstance(fold, frozenset) else frozenset([fold])
    a, b, same, images = data.arrays([p for p in pairs if p.fold not in without])
    return fit(config, images, a, b, same, name=name)


def balanced_out_of_fold(
    head_without: Callable[[frozenset[int]], HeadParams],
    a: np.ndarray,
    b: np.ndarray,
    same: np.ndarray,
    fold_of: np.ndarray,
    without: frozenset[int] = frozenset(),
) -> int:
    """The `balanced` threshold on the raw sum for the head fitted without the folds `without` (none: the
    shipped head), set out of fold. For each fold g that head was fitted on, the head fitted without g too
    scores g's pairs (a, b, same: every View 2 pair, `fold_of` its fold): people it never saw. The threshold
    with the best accuracy over those scores, pooled, is taken (the middle of ties).

    A head's PCA draws its own training people's pairs closer together than new people's, so the best threshold
    on its training pairs is biased for new people (the same bias the strict levels correct)."""
    scores, labels_ = [], []
    for g in sorted(set(fold_of.tolist()) - without):
        head = head_without(without | {g})
        held = fold_of == g
        scores.append(head.score(head.quantize(a[held]), head.quantize(b[held])))
        labels_.append(same[held])
    return best_rounded_threshold(np.concatenate(scores), np.concatenate(labels_), lsbs=0)


def simulate(params: HeadParams, qa: np.ndarray, qb: np.ndarray) -> np.ndarray:
    """Decisions of Concrete's simulation of the compiled circuit, one per pair."""
    circuit = compile_head(params)
    return np.array([int(circuit.simulate(x, y)) for x, y in zip(qa, qb, strict=True)])


def _per_fold(decisions: np.ndarray, same: np.ndarray, fold_of: np.ndarray) -> list[float]:
    return [float(np.mean(decisions[fold_of == f] == same[fold_of == f])) for f in range(10)]


def view2_folds(data: PairData, pairs: list[Pair], config: HeadConfig, with_simulation: bool) -> dict:
    """Clear integer-model (and optionally simulated) accuracy per fold, mean and std, thresholds."""
    fold_of = folds(pairs)
    a_all, b_all, same_all, _ = data.arrays(pairs)
    quantised = np.zeros(len(pairs), bool)
    simulated = np.zeros(len(pairs), bool)
    thresholds = []
    for fold in tqdm(range(10), desc=f"View 2 {config.label()}", leave=False):
        params = fit_without_fold(data, pairs, config, fold)
        thresholds.append(params.threshold)
        test = fold_of == fold
        qa, qb = params.quantize(a_all[test]), params.quantize(b_all[test])
        quantised[test] = params.decide(qa, qb).astype(bool)
        if with_simulation:
            simulated[test] = simulate(params, qa, qb).astype(bool)
    per_fold = _per_fold(quantised, same_all, fold_of)
    result = {
        "config": config.to_dict(),
        "accuracy_clear_quantised": float(np.mean(per_fold)),
        "std_clear_quantised": float(np.std(per_fold, ddof=1)),
        "fold_accuracies_clear_quantised": per_fold,
        "fold_thresholds": thresholds,
    }
    if with_simulation:
        sim_fold = _per_fold(simulated, same_all, fold_of)
        result["accuracy_simulated"] = float(np.mean(sim_fold))
        result["fold_accuracies_simulated"] = sim_fold
        result["simulation_vs_clear_disagreements"] = int(np.sum(simulated != quantised))
    return result
