"""One entry point for every kind of integer head: the hand-set tables (`training.head_fit`) and the trained
siamese head (`training.siamese`, which builds on the former)."""

from __future__ import annotations

import numpy as np

from fhe_head.head import HeadParams
from training.head_fit import HeadConfig, fit_head
from training.siamese import SiameseConfig, fit_siamese


def config_from_dict(data: dict):
    """A head configuration as recorded in meta.json / metrics: the hand-set kind (`HeadConfig`, records
    without a kind included) or the trained siamese kind (`SiameseConfig`)."""
    if data.get("kind") == "siamese":
        return SiameseConfig(**data)
    return HeadConfig(**{k: v for k, v in data.items() if k != "kind"})


def fit(config, images: np.ndarray, a: np.ndarray, b: np.ndarray, same: np.ndarray, name: str = "head") -> HeadParams:
    """The integer head of `config` fitted on training data: hand-set tables, or trained (Brevitas QAT)."""
    if config.kind == "siamese":
        return fit_siamese(config, images, a, b, same, name=name)
    return fit_head(config, images, a, b, same, name=name)
