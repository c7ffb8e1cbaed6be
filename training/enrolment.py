"""Enrolment from several photos: how a K-photo template changes what each security level holds.

    python -m training.enrolment --lfw-dir PATH [--encoder sface] [--ks 1 2 3 5]

Protocol (LFW View 2's images and identity-disjoint folds, as training/security_levels.py):
- A K-shot template of a person = `client_encoder.template_of` over K of their photos (drawn at random,
  seeded, `DRAWS` draws per person); genuine attempts = that template against each of the person's
  other photos; impostor attempts = that template against every photo of every other person of the fold.
  A person enters at K if they have at least K + 1 photos in View 2.
- For each held-out fold: the head is fitted on the other 9 folds' pairs (as the shipped heads are);
  each level's threshold is set two ways on the other 9 folds: on 1-shot impostor pairs (the levels the
  heads ship with today) and on K-shot impostor attempts; FMR and TAR are measured on the held-out fold.
- Scores: the head's exact integer sum (integer model = FHE), and clear float distance beside it.
Writes artifacts/metrics/enrolment.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

from client_encoder.encoder import DEFAULT_ENCODER, ENCODERS, template_of
from training.heads import fit
from training.lfw import open_lfw_for_cli, unique_images
from training.paths import METRICS
from training.security_levels import LEVELS, Gallery, Scorer, level_thresholds, raw_threshold, shipped_config

KS = (1, 2, 3, 5)
DRAWS = 3


class Templates:
    """Per fold, the K-shot templates (rows appended after the images) and their genuine/impostor attempts."""

    def __init__(self, gallery: Gallery, encoder: str, k: int, seed: int = 0) -> None:
        rng = np.random.default_rng(seed + 1000 * k)
        vectors, rows = [gallery.vectors], len(gallery.vectors)
        self.genuine: list[tuple[np.ndarray, np.ndarray]] = []
        self.impostor: list[tuple[np.ndarray, np.ndarray]] = []
        self.people = []
        for f in range(gallery.n_folds):
            in_fold = np.flatnonzero(gallery.fold == f)
            gen_i, gen_j, imp_i, imp_j, people = [], [], [], [], 0
            for person in np.unique(gallery.person[in_fold]):
                own = in_fold[gallery.person[in_fold] == person]
                if len(own) < k + 1:
                    continue
                people += 1
                others = in_fold[gallery.person[in_fold] != person]
                for _ in range(DRAWS if len(own) > k + 1 else 1):
                    chosen = rng.permutation(own)
                    enrolled, probes = chosen[:k], chosen[k:]
                    vectors.append(template_of(gallery.vectors[enrolled], encoder)[None])
                    gen_i += [rows] * len(probes)
                    gen_j += list(probes)
                    imp_i += [rows] * len(others)
                    imp_j += list(others)
                    rows += 1
            self.genuine.append((np.array(gen_i, np.int64), np.array(gen_j, np.int64)))
            self.impostor.append((np.array(imp_i, np.int64), np.array(imp_j, np.int64)))
            self.people.append(people)
        self.vectors = np.concatenate(vectors)


def evaluate(gallery: Gallery, encoder: str, config, ks: tuple[int, ...]) -> dict:
    report: dict = {}
    templates = {k: Templates(gallery, encoder, k) for k in ks}
    for k in ks:
        start = time.perf_counter()
        t = templates[k]
        rows = {name: {"one_shot": {"fmr": [], "tar": []}, "k_shot": {"fmr": [], "tar": []}} for name in LEVELS}
        clear_rows = {name: {"fmr": [], "tar": []} for name in LEVELS}
        for f in range(gallery.n_folds):
            a, b, same, images = gallery.training_pairs(f)
            head = fit(config, images, a, b, same, name=f"k{k}-fold{f}")
            scorer = Scorer(t.vectors, head)
            others = [g for g in range(gallery.n_folds) if g != f]
            one_shot = np.concatenate([scorer(*gallery.impostors[g]) for g in others])
            k_shot = np.concatenate([scorer(*t.impostor[g]) for g in others])
            genuine, impostor = scorer(*t.genuine[f]), scorer(*t.impostor[f])
            for kind, calibration in (("one_shot", one_shot), ("k_shot", k_shot)):
                for name, threshold in level_thresholds(calibration, raw_threshold(head)).items():
                    rows[name][kind]["fmr"].append(float(np.mean(impostor < threshold)))
                    rows[name][kind]["tar"].append(float(np.mean(genuine < threshold)))
            clear = Scorer(t.vectors)
            clear_gen, clear_imp = clear(*t.genuine[f]), clear(*t.impostor[f])
            clear_cal = np.concatenate([clear(*t.impostor[g]) for g in others])
            for name, threshold in level_thresholds(clear_cal, np.inf).items():
                if LEVELS[name] is not None:
                    clear_rows[name]["fmr"].append(float(np.mean(clear_imp < threshold)))
                    clear_rows[name]["tar"].append(float(np.mean(clear_gen < threshold)))
        report[str(k)] = {
            "people_per_fold": t.people,
            "genuine_attempts": int(sum(len(g[0]) for g in t.genuine)),
            "impostor_attempts": int(sum(len(i[0]) for i in t.impostor)),
            "head_integer_model": {
                name: {kind: _summary(v, LEVELS[name]) for kind, v in kinds.items()} for name, kinds in rows.items()
            },
            "clear_float_k_shot_thresholds": {
                name: _summary(v, LEVELS[name]) for name, v in clear_rows.items() if LEVELS[name] is not None
            },
        }
        brief = {n: round(report[str(k)]["head_integer_model"][n]["k_shot"]["tar"], 4) for n in ("1e-3", "1e-4")}
        print(f"K = {k}: head TAR (K-shot levels) {brief} [{time.perf_counter() - start:.0f} s]", flush=True)
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
        "draws_per_person": DRAWS,
        "by_k": evaluate(gallery, args.encoder, config, tuple(args.ks)),
    }
    METRICS.mkdir(parents=True, exist_ok=True)
    (METRICS / "enrolment.json").write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
