"""The level element: one circuit, several thresholds (`fhe_head.head` explains the design). Builds a head's
element from raw-sum thresholds, and says a head's own decision as such a threshold."""

from __future__ import annotations

import numpy as np

from fhe_head.head import HeadParams


def add_levels(params: HeadParams, thresholds: dict[str, int]) -> HeadParams:
    """`params` (no levels) plus the level element: `thresholds[name]` = raw-sum threshold of that level
    (same person iff sum of the d lookups < it). Keeps as many bits for the comparison as `params`
    does: if the offsets widen the sum, one more bit is rounded off (the offset is added before the
    rounding, so every level keeps its exact raw threshold)."""
    if params.levels:
        raise ValueError(f"head {params.name!r} already has levels {params.levels}")
    names = tuple(thresholds)
    t = np.array([int(thresholds[n]) for n in names], np.int64)
    base_max = params.max_sum
    kept_bits = max(int(base_max).bit_length() - params.lsbs, 1)
    lsbs = params.lsbs
    while True:
        step, half = 1 << lsbs, (1 << lsbs) >> 1
        circuit_threshold = -(-(int(t.max()) + half) // step) * step
        offsets = circuit_threshold - half - t  # >= 0; the loosest level gets the smallest
        if int(base_max + offsets.max()).bit_length() - lsbs <= kept_bits:
            break
        lsbs += 1
    deltas = np.abs(np.arange(-params.offset, params.offset + 1))
    # Symmetric in the difference (a template may be either argument); a difference no level has
    # (two probes, a forged element) gets the strictest offset.
    row = np.where(deltas < len(names), offsets[np.minimum(deltas, len(names) - 1)], offsets.max())
    return HeadParams(
        mean=params.mean,
        projection=params.projection,
        scale=params.scale,
        n_bits=params.n_bits,
        tables=np.vstack([params.tables, row[None, :]]).astype(np.int64),
        lsbs=lsbs,
        threshold=int(circuit_threshold),
        name=params.name,
        levels=names,
        level_thresholds=tuple(int(v) for v in t),
    )


def raw_threshold(params: HeadParams) -> int:
    """The head's own decision as a threshold on the raw sum: rounded(s) < T  <=>  s < T - half."""
    return int(params.threshold - ((1 << params.lsbs) >> 1))
