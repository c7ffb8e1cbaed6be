"""Enrolment from several photos: how a K-photo template changes what each security level holds.

    python -m training.enrolment --lfw-dir PATH [--encoder sface] [--ks 1 2 3 5]

Protocol (LFW View 2's images and identity-disjoint folds, as training/security_levels.py):
- K-photo templates and their attempts: `training.security_levels.Templates` (TEMPLATE_DRAWS draws per
  person; a person enters at K with at least K + 1 photos in View 2).
- For each held-out fold: the head is fitted on the other 9 folds' pairs (as the shipped heads are);
  each level's threshold is set out of fold on the other 9 folds, two ways, as the shipped heads carry
  them: on one-photo impostor pairs (the one-photo levels) and on impostor attempts of templates of
  SEVERAL_PHOTOS_KS photos pooled (the several-photo levels, which the client uses for any K >= 2);
  FMR and TAR are measured on the held-out fold's K-photo templates.
- Scores: the head's exact integer sum (integer model = FHE), and clear float distance beside it.
Writes artifacts/metrics/enrolment.json (enrolment_<point>.json for another head than accurate).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

from client_encoder.encoder import DEFAULT_ENCODER, ENCODERS
from privface.levels import enrolment_report_name
from training.level_element import raw_threshold
from training.lfw import open_lfw_for_cli, unique_images
from training.paths import METRICS
from training.security_levels import (
    LEVELS,
    SEVERAL_PHOTOS_KS,
    TEMPLATE_DRAWS,
    FoldHeads,
    Gallery,
    ImpostorScores,
    Scorer,
    Templates,
    level_thresholds,
    shipped_config,
)

KS = (1, 2, 3, 5)


def evaluate(gallery: Gallery, encoder: str, config, ks: tuple[int, ...]) -> dict:
    heads = FoldHeads(gallery, config, "enrolment")
    pooled = Templates(gallery, encoder, SEVERAL_PHOTOS_KS)
    calibrations = {
        "one_photo_levels": ImpostorScores(heads, gallery.vectors, gallery.impostors),
        "several_photo_levels": ImpostorScores(heads, pooled.vectors, pooled.impostor),
    }
    templates = {k: Templates(gallery, encoder, k) for k in ks}
    rows = {k: {name: {kind: {"fmr": [], "tar": []} for kind in calibrations} for name in LEVELS} for k in ks}
    clear_rows = {k: {name: {"fmr": [], "tar": []} for name in LEVELS if LEVELS[name]} for k in ks}
    for f in range(gallery.n_folds):
        start = time.perf_counter()
        held_out = frozenset([f])
        head = heads(held_out)
        levels = {kind: c.thresholds(held_out, raw_threshold(head))["thresholds"] for kind, c in calibrations.items()}
        others = [g for g in range(gallery.n_folds) if g != f]
        for k, t in templates.items():
            scorer, clear = Scorer(t.vectors, head), Scorer(t.vectors)
            genuine, impostor = scorer(*t.genuine[f]), scorer(*t.impostor[f])
            for kind, thresholds in levels.items():
                for name, threshold in thresholds.items():
                    rows[k][name][kind]["fmr"].append(float(np.mean(impostor < threshold)))
                    rows[k][name][kind]["tar"].append(float(np.mean(genuine < threshold)))
            # Clear float, for reference: K-photo thresholds from the other folds (nothing is fitted).
            clear_gen, clear_imp = clear(*t.genuine[f]), clear(*t.impostor[f])
            clear_cal = np.concatenate([clear(*t.impostor[g]) for g in others])
            for name, threshold in level_thresholds(clear_cal, np.inf).items():
                if LEVELS[name] is not None:
                    clear_rows[k][name]["fmr"].append(float(np.mean(clear_imp < threshold)))
                    clear_rows[k][name]["tar"].append(float(np.mean(clear_gen < threshold)))
        print(f"fold {f} [{time.perf_counter() - start:.0f} s]", flush=True)
    report: dict = {}
    for k, t in templates.items():
        report[str(k)] = {
            "people_per_fold": t.people,
            "genuine_attempts": int(sum(len(g[0]) for g in t.genuine)),
            "impostor_attempts": int(sum(len(i[0]) for i in t.impostor)),
            "levels_the_client_uses": "one_photo_levels" if k == 1 else "several_photo_levels",
            "head_integer_model": {
                name: {kind: _summary(v, LEVELS[name]) for kind, v in kinds.items()} for name, kinds in rows[k].items()
            },
            "clear_float_k_photo_thresholds": {name: _summary(v, LEVELS[name]) for name, v in clear_rows[k].items()},
        }
        used = report[str(k)]["levels_the_client_uses"]
        brief = {n: round(report[str(k)]["head_integer_model"][n][used]["tar"], 4) for n in ("1e-3", "1e-4")}
        print(f"K = {k}: head TAR at the levels the client uses {brief}", flush=True)
    return report


def _summary(values: dict, target: float | None) -> dict:
    fmr = values["fmr"]
    return {
        "tar": float(np.mean(values["tar"])),
        "fmr": float(np.mean(fmr)),
        "fmr_per_fold": fmr,
        "fmr_worst_fold_over_target": max(fmr) / target if target else None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lfw-dir", help="LFW root (default: $LFW_DIR)")
    parser.add_argument("--encoder", choices=ENCODERS, default=DEFAULT_ENCODER)
    parser.add_argument("--point", default="accurate", help="the shipped head whose configuration is refitted")
    parser.add_argument("--ks", nargs="+", type=int, default=list(KS))
    args = parser.parse_args(argv)
    from training.embeddings import encoder_vectors

    lfw = open_lfw_for_cli(args.lfw_dir)
    view2 = lfw.view2()
    vectors = encoder_vectors(unique_images(view2), args.encoder, desc=f"LFW {lfw.variant()}")
    gallery = Gallery(view2, vectors.vectors)
    config = shipped_config(args.point)
    report = {
        "protocol": __doc__.split("Protocol")[1].split("Writes")[0].strip(),
        "variant": lfw.variant(),
        "encoder": args.encoder,
        "point": args.point,
        "config": config.to_dict(),
        "draws_per_person": TEMPLATE_DRAWS,
        "several_photo_levels_set_on_ks": list(SEVERAL_PHOTOS_KS),
        "by_k": evaluate(gallery, args.encoder, config, tuple(args.ks)),
    }
    METRICS.mkdir(parents=True, exist_ok=True)
    (METRICS / enrolment_report_name(args.point)).write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
