"""Embeddings of an LFW copy's images, looked up by pair: the arrays every evaluation starts from."""

from __future__ import annotations

import numpy as np

from training.embeddings import ImageEmbeddings, ImageVectors
from training.lfw import Pair, unique_images


def labels(pairs: list[Pair]) -> np.ndarray:
    """(n,) bool: True for a same-person pair."""
    return np.array([p.same for p in pairs])


def folds(pairs: list[Pair]) -> np.ndarray:
    """(n,) int: each pair's View 2 fold."""
    return np.array([p.fold for p in pairs])


class PairData:
    """One encoder's vectors (float64; for dlib's cached views, one TTA mode's mean), indexed by image path."""

    def __init__(self, emb: ImageVectors | ImageEmbeddings, tta: str = "jitter") -> None:
        self.vectors = emb.vectors if isinstance(emb, ImageVectors) else emb.tta(tta).astype(np.float64)
        self.index = {p: i for i, p in enumerate(emb.paths)}

    @classmethod
    def from_vectors(cls, paths: list, vectors: np.ndarray) -> PairData:
        """Vectors given directly, one row per path."""
        data = cls.__new__(cls)
        data.vectors = np.asarray(vectors, np.float64)
        data.index = {p: i for i, p in enumerate(paths)}
        return data

    def sides(self, pairs: list[Pair]) -> tuple[np.ndarray, np.ndarray]:
        """(left, right): (n, 128) each."""
        left = self.vectors[[self.index[p.left] for p in pairs]]
        right = self.vectors[[self.index[p.right] for p in pairs]]
        return left, right

    def arrays(self, pairs: list[Pair]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(left, right, same, images): the pairs' two sides, their labels and every image they use once."""
        a, b = self.sides(pairs)
        images = self.vectors[[self.index[p] for p in unique_images(pairs)]]
        return a, b, labels(pairs), images

    def distances(self, pairs: list[Pair]) -> np.ndarray:
        """(n,) Euclidean distance of each pair's descriptors."""
        a, b = self.sides(pairs)
        return np.linalg.norm(a - b, axis=1)
