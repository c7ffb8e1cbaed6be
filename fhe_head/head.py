"""The siamese head as plain integers: what the client computes per face, and what the FHE
circuit computes on the two encrypted vectors (its clear reference).

Split (per face, in clear, on the client):
    z = P (e - mean)                     learned/PCA projection 128 -> d
    q = clip(round(z / scale), lo, hi)   per-dimension scale, signed n-bit integers
Interaction (in FHE, on the server):
    s = sum_i table_i[q_a,i - q_b,i]     one lookup per vector element: a learned function of the difference
    s' = round s to a multiple of 2**lsbs (only the top bits enter the comparison)
    same = s' < threshold                the one bit that leaves the server, encrypted

Security levels (optional): the vector gets one more element after the d projected ones. A template
carries 0 there, a probe the index k of its level in `levels`; that element's table maps the
difference -k (or +k: the row is symmetric, so the argument order does not matter) to the level's
score offset, added before the rounding. The constant threshold of the circuit thus acts as a
per-level threshold on the raw sum, at full integer resolution, one circuit serves every level, and
the server, which sees only ciphertexts, cannot tell which level a probe asked for.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from privface_core.errors import UnknownLevelError

FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)  # version 1 = no level element
# The shipped heads' levels by index k (0 = what a template carries): `balanced` = best LFW accuracy,
# then the target false-match rates. The default is a secure one, not `balanced` (see README).
LEVEL_NAMES = ("balanced", "1e-2", "1e-3", "1e-4")
DEFAULT_LEVEL = "1e-3"
# A template enrolled from several photos (the mean of their vectors) lies closer to every stranger than
# a one-photo template, so a head may carry a second threshold of a level for such templates, named
# level + SEVERAL_PHOTOS; the key owner's client picks it from how many photos the template came from.
SEVERAL_PHOTOS = "/several-photos"


def default_level(offered: tuple[str, ...]) -> str | None:
    """DEFAULT_LEVEL where a head offers it, else the strictest level it offers (None: a head without levels)."""
    if not offered:
        return None
    return DEFAULT_LEVEL if DEFAULT_LEVEL in offered else offered[-1]


def round_half_up(s: np.ndarray, lsbs: int) -> np.ndarray:
    """Integer sums `s` rounded to a multiple of 2**lsbs, halves up: the rounding the circuit computes."""
    return ((s + (1 << lsbs >> 1)) >> lsbs) << lsbs if lsbs else s


@dataclass
class HeadParams:
    mean: np.ndarray  # (128,) float32
    projection: np.ndarray  # (d, 128) float32
    scale: np.ndarray  # (d,) float32: quantisation step per dimension
    n_bits: int  # signed input bits per dimension
    tables: np.ndarray  # (d [+ 1 level row], 2**(n_bits+1) - 1) int: table_i[delta + offset]
    lsbs: int  # bits rounded off the sum before the comparison
    threshold: int  # a multiple of 2**lsbs: same person iff rounded sum < threshold
    name: str = "head"
    levels: tuple[str, ...] = ()  # level names by index k (k = 0 is what a template carries); () = no level row
    level_thresholds: tuple[int, ...] = ()  # per level: same person iff raw sum of the d lookups < this

    def __post_init__(self) -> None:
        expected = self.dims + (1 if self.levels else 0)
        if len(self.tables) != expected:
            raise ValueError(f"{len(self.tables)} table rows for {self.dims} dimensions and levels {self.levels}")
        if len(self.levels) > self.q_max + 1 or len(self.level_thresholds) != len(self.levels):
            raise ValueError("levels and level_thresholds must pair up, at most 2**(n_bits-1) of them")

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
    def vector_length(self) -> int:
        """Elements of the encrypted vector: the d projected ones, plus the level element if any."""
        return len(self.tables)

    @property
    def offered(self) -> tuple[str, ...]:
        """The levels a user chooses among (each may have a several-photo variant in `levels`)."""
        return tuple(name for name in self.levels if not name.endswith(SEVERAL_PHOTOS))

    def level_for(self, level: str | None, photos: int | None) -> str | None:
        """The level a probe asks for against a template of `photos` photos (None: not known, which takes the
        several-photo threshold where there is one: the stricter, so an unknown template never lets in more)."""
        if level is None or photos == 1 or level + SEVERAL_PHOTOS not in self.levels:
            return level
        return level + SEVERAL_PHOTOS

    def level_index(self, level: str | None) -> int:
        """k of a level name; None (a template, or a head without levels' only decision) -> 0."""
        if level is None:
            return 0
        if not self.levels:
            raise UnknownLevelError(f"security level {level!r} asked of head {self.name!r}, which has no levels")
        if level not in self.levels:
            raise UnknownLevelError(f"unknown security level {level!r}: this head offers {', '.join(self.offered)}")
        return self.levels.index(level)

    @property
    def offset(self) -> int:
        """Added to a - b so every table index is >= 0 (a clear addition: free in FHE)."""
        return self.q_max - self.q_min

    # ---- client side, clear --------------------------------------------------------------
    def quantize(self, embeddings: np.ndarray, level: str | None = None) -> np.ndarray:
        """Integer vector(s) to encrypt, from 128-d float embedding(s): a template (level None) or a
        probe asking for `level`."""
        e = np.asarray(embeddings, dtype=np.float64)
        z = (e - self.mean) @ self.projection.T.astype(np.float64)
        q = np.clip(np.rint(z / self.scale), self.q_min, self.q_max).astype(np.int64)
        k = self.level_index(level)
        if not self.levels:
            return q
        return np.concatenate([q, np.full(q.shape[:-1] + (1,), k, np.int64)], axis=-1)

    # ---- what the circuit computes, in clear ---------------------------------------------
    def score(self, qa: np.ndarray, qb: np.ndarray) -> np.ndarray:
        """Exact integer sum of the per-dimension lookups (before rounding)."""
        delta = np.asarray(qa) - np.asarray(qb) + self.offset
        return self.tables[np.arange(self.vector_length), delta].sum(axis=-1)

    def raw_score(self, qa: np.ndarray, qb: np.ndarray) -> np.ndarray:
        """The sum of the d projected dimensions' lookups only (what `level_thresholds` apply to)."""
        delta = np.asarray(qa)[..., : self.dims] - np.asarray(qb)[..., : self.dims] + self.offset
        return self.tables[np.arange(self.dims), delta].sum(axis=-1)

    def decide(self, qa: np.ndarray, qb: np.ndarray) -> np.ndarray:
        """1 = same person, as the circuit computes it with exact rounding (round half up)."""
        return (round_half_up(self.score(qa, qb), self.lsbs) < self.threshold).astype(np.int64)

    @property
    def max_sum(self) -> int:
        return int(self.tables.max(axis=1).sum())

    # ---- persistence ---------------------------------------------------------------------
    def to_json(self) -> dict:
        levels = {"levels": list(self.levels), "level_thresholds": list(self.level_thresholds)} if self.levels else {}
        return {
            "format_version": FORMAT_VERSION if self.levels else 1,
            **levels,
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
        if data.get("format_version") not in READABLE_VERSIONS:
            raise ValueError(f"head parameters of format {data.get('format_version')}, expected {READABLE_VERSIONS}")
        return cls(
            mean=np.array(data["mean"], np.float32),
            projection=np.array(data["projection"], np.float32),
            scale=np.array(data["scale"], np.float32),
            n_bits=int(data["n_bits"]),
            tables=np.array(data["tables"], np.int64),
            lsbs=int(data["lsbs"]),
            threshold=int(data["threshold"]),
            name=data.get("name", "head"),
            levels=tuple(data.get("levels", ())),
            level_thresholds=tuple(int(t) for t in data.get("level_thresholds", ())),
        )

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_json()))

    @classmethod
    def load(cls, path: Path) -> HeadParams:
        return cls.from_json(json.loads(Path(path).read_text()))
