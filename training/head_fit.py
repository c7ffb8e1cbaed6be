"""Fitting the integer siamese head (`fhe_head.head.HeadParams`) from pairs of embeddings.

Per face (client, clear): PCA to d dimensions fitted on the training images, then each dimension
quantised to signed n-bit integers with its *own* step (clip at k standard deviations), so every
dimension uses all its levels. Per pair (server, FHE): table_i(delta) = min(L - 1,
round((step_i * delta)^2 / unit)) restores the Euclidean metric that per-dimension steps would
otherwise distort (plain whitening costs 1-3 points), and saturates, which caps how much one
dimension can count. `unit` is set so an average different-person pair fills a fraction
`saturation` of the L levels. The sum is rounded to `target_bits` significant bits and compared
with a threshold chosen on the training pairs. The naive baseline (one global step, the same
table for every dimension) is the same code with `per_dim=False`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import ClassVar

import numpy as np

from fhe_head.head import HeadParams, round_half_up


@dataclass(frozen=True)
class HeadConfig:
    dims: int
    n_bits: int = 4
    clip_sigma: float = 2.0
    levels: int = 16
    saturation: float = 0.15
    target_bits: int = 6
    per_dim: bool = True
    kind: ClassVar[str] = "hand-set"  # not a field: recorded configurations (and run keys) stay as they were

    def label(self) -> str:
        kind = "per-dim" if self.per_dim else "naive"
        return (
            f"{kind} d={self.dims} {self.n_bits}b clip={self.clip_sigma} L={self.levels} "
            f"sat={self.saturation} keep={self.target_bits}b"
        )

    def to_dict(self) -> dict:
        return asdict(self)


def pca(images: np.ndarray, dims: int) -> tuple[np.ndarray, np.ndarray]:
    """(mean, projection): the mean of `images` (n, k) and their top `dims` principal axes (dims, k)."""
    mean = images.mean(axis=0)
    _, _, vt = np.linalg.svd(images - mean, full_matrices=False)
    return mean, vt[:dims]


def best_rounded_threshold(scores: np.ndarray, same: np.ndarray, lsbs: int) -> int:
    """Threshold (a multiple of 2**lsbs) maximising accuracy of `rounded score < threshold`."""
    rounded = round_half_up(scores, lsbs)
    candidates = np.arange(0, int(rounded.max()) + (2 << lsbs), 1 << lsbs)
    correct = [np.sum((rounded < t) == same) for t in candidates]
    best = np.flatnonzero(np.array(correct) == max(correct))
    return int(candidates[best[len(best) // 2]])


def fit_head(
    config: HeadConfig, images: np.ndarray, a: np.ndarray, b: np.ndarray, same: np.ndarray, name: str = "head"
) -> HeadParams:
    """Fit on training data: `images` (n, 128) for PCA/scales, pairs (a, b, same) for the rest."""
    mean, projection = pca(images.astype(np.float64), config.dims)
    spread = ((images - mean) @ projection.T).std(axis=0)
    q_max = 2 ** (config.n_bits - 1) - 1
    step = config.clip_sigma * (spread if config.per_dim else np.full(config.dims, spread.mean())) / q_max
    params = HeadParams(
        mean=mean.astype(np.float32),
        projection=projection.astype(np.float32),
        scale=step.astype(np.float32),
        n_bits=config.n_bits,
        tables=np.zeros((config.dims, 2 ** (config.n_bits + 1) - 1), np.int64),
        lsbs=0,
        threshold=0,
        name=name,
    )
    deltas = np.arange(-params.offset, params.offset + 1)
    squared = (step[:, None] * deltas[None, :]) ** 2  # (d, 2*offset+1): metric value of each difference
    qa, qb = params.quantize(a), params.quantize(b)
    per_dim_values = (step * (qa - qb)) ** 2
    unit = per_dim_values[~same].mean() / (config.saturation * (config.levels - 1))
    params.tables = np.minimum(config.levels - 1, np.rint(squared / unit)).astype(np.int64)
    params.lsbs = max(0, int(params.max_sum).bit_length() - config.target_bits)
    params.threshold = best_rounded_threshold(params.score(qa, qb), same, params.lsbs)
    return params


def accuracy_of(params: HeadParams, a: np.ndarray, b: np.ndarray, same: np.ndarray) -> float:
    return float(np.mean(params.decide(params.quantize(a), params.quantize(b)) == same))
