"""Heads fitted on synthetic 'identities' (clusters in 128-d), for tests that need no LFW."""

from __future__ import annotations

import numpy as np

from fhe_head.head import HeadParams
from training.head_fit import HeadConfig, fit_head


def toy_head(seed: int, config: HeadConfig, noise: float) -> tuple[HeadParams, np.ndarray]:
    """A head fitted on 40 synthetic people (400 faces, 600 pairs, half of them same-person), plus the faces."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(40, 128))
    people = rng.integers(0, 40, 400)
    faces = centres[people] + noise * rng.normal(size=(400, 128))
    i, j = rng.integers(0, 400, (2, 600))
    j[:300] = [rng.choice(np.flatnonzero(people == people[k])) for k in i[:300]]
    same = people[i] == people[j]
    return fit_head(config, faces, faces[i], faces[j], same, name=f"toy{seed}"), faces
