"""The siamese head as plain integers: what the client computes per face, and what the FHE
circuit computes on the two encrypted vectors (its clear reference).

Split (per face, in clear, on the client):
    z = P (e - mean)                     learned/PCA projection 128 -> d
    q = clip(round(z / scale), lo, hi)   per-dimension scale, signed n-bit integers
Interaction (in FHE, on the server):
    s = sum_i table_i[q_a,i - q_b,i]     one lookup per dimension: a learned function of the difference
    s' = round s to a multiple of 2**lsbs (only the top bits enter the comparison)
    same = s' < threshold                the one bit that leaves the server, encrypted
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FORMAT_VERSION = 1


def round_half_up(s: np.ndarray, lsbs: int) -> np.ndarray:
    """Integer sums `s` rounded to a multiple of 2**lsbs, halves up: the rounding the circuit computes."""
    return ((s + (1 << lsbs >> 1)) >> lsbs) << lsbs if lsbs else s


@dataclass
class HeadParams:
    mean: np.ndarray  # (128,) float32
    projection: np.ndarray  # (d, 128) float32
    scale: np.ndarray  # (d,) float32: quantisation step per dimension
    n_bits: int  # signed input bits per dimension
    tables: np.ndarray  # (d, 2**(n_bits+1) - 1) int: table_i[delta + offset]
    lsbs: int  # bits rounded off the sum before the comparison
    threshold: int  # a multiple of 2**lsbs: same person iff rounded sum < threshold
    name: str = "head"

    @property
    def dims(self) -> int:
        return int(self.projection.shape[0])

    @property
    def q_min(self) -> int:
        return -(2 ** (self.n_bits - 1))

    @property
    def q_max(self) -> int:
        return 2 ** (self.n_bits - 1) - 1

    @property
    def offset(self) -> int:
        """Added to a - b so every table index is >= 0 (a clear addition: free in FHE)."""
        return self.q_max - self.q_min

    # ---- client side, clear --------------------------------------------------------------
    def quantize(self, embeddings: np.ndarray) -> np.ndarray:
        """Integer vector(s) to encrypt, from 128-d float embedding(s)."""
        e = np.asarray(embeddings, dtype=np.float64)
        z = (e - self.mean) @ self.projection.T.astype(np.float64)
        return np.clip(np.rint(z / self.scale), self.q_min, self.q_max).astype(np.int64)

    # ---- what the circuit computes, in clear ---------------------------------------------
    def score(self, qa: np.ndarray, qb: np.ndarray) -> np.ndarray:
        """Exact integer sum of the per-dimension lookups (before rounding)."""
        delta = np.asarray(qa) - np.asarray(qb) + self.offset
        return self.tables[np.arange(self.dims), delta].sum(axis=-1)

    def decide(self, qa: np.ndarray, qb: np.ndarray) -> np.ndarray:
        """1 = same person, as the circuit computes it with exact rounding (round half up)."""
        return (round_half_up(self.score(qa, qb), self.lsbs) < self.threshold).astype(np.int64)

    @property
    def max_sum(self) -> int:
        return int(self.tables.max(axis=1).sum())

    # ---- persistence ---------------------------------------------------------------------
    def to_json(self) -> dict:
        return {
            "format_version": FORMAT_VERSION,
            "name": self.name,
            "n_bits": self.n_bits,
            "lsbs": self.lsbs,
            "threshold": self.threshold,
            "mean": self.mean.astype(float).tolist(),
            "projection": self.projection.astype(float).tolist(),
            "scale": self.scale.astype(float).tolist(),
            "tables": self.tables.astype(int).tolist(),
        }

    @classmethod
    def from_json(cls, data: dict) -> HeadParams:
        if data.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"head parameters of format {data.get('format_version')}, expected {FORMAT_VERSION}")
        return cls(
            mean=np.array(data["mean"], np.float32),
            projection=np.array(data["projection"], np.float32),
            scale=np.array(data["scale"], np.float32),
            n_bits=int(data["n_bits"]),
            tables=np.array(data["tables"], np.int64),
            lsbs=int(data["lsbs"]),
            threshold=int(data["threshold"]),
            name=data.get("name", "head"),
        )

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_json()))

    @classmethod
    def load(cls, path: Path) -> HeadParams:
        return cls.from_json(json.loads(Path(path).read_text()))
