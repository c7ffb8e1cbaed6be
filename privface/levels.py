"""Security levels in plain words: what a level means for a head, from its measured rates.

The rates come from artifacts/metrics/security_levels.json (training.security_levels: LFW, thresholds
set on other people than those measured, 10 folds); nothing here is a hard-coded figure.
"""

from __future__ import annotations

import json
from functools import cache

from fhe_head.artifacts import HEAD_FILE, point_dir
from fhe_head.head import DEFAULT_LEVEL, LEVEL_NAMES, HeadParams, default_level
from privface_core.resources import metrics_dir

__all__ = [
    "DEFAULT_LEVEL",
    "LEVEL_NAMES",
    "default_level",
    "describe",
    "enrolment_report_name",
    "look_alike_rates",
    "measured_rates",
    "offered_levels",
    "several_photo_rates",
]


@cache
def offered_levels(point: str) -> tuple[str, ...]:
    """The security levels a shipped head offers, in order of strictness (empty: a head without levels)."""
    return HeadParams.load(point_dir(point) / HEAD_FILE).offered


@cache
def _report() -> dict:
    path = metrics_dir() / "security_levels.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _measured(point: str, level: str) -> dict | None:
    for model in _report().get("models", {}).values():
        if model.get("point") == point and level in model.get("levels", {}):
            return model["levels"][level]
    return None


def measured_rates(point: str, level: str) -> tuple[float, float] | None:
    """(false-match rate, false non-match rate) measured for this head and level, or None if unmeasured."""
    rates = _measured(point, level)
    return None if rates is None else (rates["fmr"]["mean"], rates["fnmr"]["mean"])


def look_alike_rates(point: str, level: str) -> tuple[float, float] | None:
    """(false-match rate among strangers of one look-alike group, that rate in the worst group), or None."""
    rates = _measured(point, level)
    if rates is None or "fmr_look_alike" not in rates:
        return None
    return rates["fmr_look_alike"]["mean"], max(rates["fmr_per_look_alike_group"])


def _one_in(rate: float) -> str:
    return f"1 in {round(1 / rate):,}" if rate > 0 else "none"


def enrolment_report_name(point: str) -> str:
    """The metrics file of `training.enrolment` for a head (it writes it, `several_photo_rates` reads it)."""
    return "enrolment.json" if point == "accurate" else f"enrolment_{point}.json"


@cache
def _enrolment_report(point: str) -> dict:
    try:
        return json.loads((metrics_dir() / enrolment_report_name(point)).read_text())
    except (OSError, ValueError):
        return {}


def several_photo_rates(point: str, level: str, photos: int | None) -> tuple[int, float, float] | None:
    """(K, false-match rate, false non-match rate) of `level`'s several-photo threshold measured on templates
    of K photos, K the largest measured <= `photos` (None: the smallest measured), or None if unmeasured."""
    report = _enrolment_report(point)
    if report.get("point") != point:
        return None
    measured = sorted(int(k) for k in report.get("by_k", {}) if int(k) > 1)
    fitting = [k for k in measured if photos is None or k <= photos]
    if not fitting:
        return None
    k = fitting[0] if photos is None else fitting[-1]
    rates = report["by_k"][str(k)]["head_integer_model"].get(level, {}).get("several_photo_levels")
    return None if rates is None else (k, rates["fmr"], 1 - rates["tar"])


def describe(point: str, level: str, photos: int | None = 1) -> str:
    """One plain sentence: how many strangers this level lets in, how many genuine attempts it refuses
    (against a template of `photos` photos; None: one this client did not enrol, compared as several)."""
    if photos != 1 and level in LEVEL_NAMES[1:]:
        several = several_photo_rates(point, level, photos)
        if several is None:
            return f"no measured rates for the {point} head against templates of several photos"
        k, fmr, fnmr = several
        return (
            f"about {_one_in(fmr)} strangers would be accepted; about {_one_in(fnmr)} genuine attempts would be "
            f"refused (a template of several photos: measured on LFW templates of {k} photos, people the head "
            "was not fitted on)"
        )
    rates = measured_rates(point, level)
    if rates is None:
        return f"no measured rates for the {point} head at this level"
    fmr, fnmr = rates
    # A level holds its rate over LFW's mix of people; strangers who look alike get in far more often.
    alike = look_alike_rates(point, level)
    crowded = (
        f", {_one_in(alike[0])} among strangers who look alike, up to {_one_in(alike[1])} in the group of "
        "people the model tells apart worst"
        if alike
        else ""
    )
    return (
        f"about {_one_in(fmr)} strangers would be accepted{crowded}; about {_one_in(fnmr)} genuine attempts "
        "would be refused (measured on LFW, people the head was not fitted on)"
    )
