"""What any head of a given shape could reach: clear references on LFW View 2, 10 folds.

    python -m training.ceilings --lfw-dir PATH [--encoder dlib|sface|fused]

For d in DIMS: float PCA-d distance, and the same distance after quantising each PCA dimension to n-bit
integers (per-dimension steps at `clip` standard deviations, exact squared differences, no table rounding,
no saturation). A head whose server runs one lookup per n-bit difference cannot see more of a face than
its quantised vector holds, so the quantised figure is what table learning can approach (not a strict
bound: a learned table may reshape distances). Per fold: PCA and steps fitted on the 9 training folds'
images, the accuracy threshold on their pairs, TAR at FMR 1e-3 with the threshold set on their people's
cross-identity image pairs (the security-levels protocol) and measured on the held-out fold.
Writes artifacts/metrics/head_ceilings.json (dlib) or head_ceilings_<encoder>.json.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from client_encoder.encoder import DEFAULT_ENCODER, ENCODERS
from training.head_fit import pca
from training.lfw import open_lfw_for_cli, unique_images
from training.paths import METRICS
from training.protocol import best_threshold
from training.security_levels import Gallery, Scorer, threshold_at_fmr
from training.train_head import embed_lfw

DIMS = (16, 24, 32, 48, 64)
SHAPES = (("float", None, None), ("4-bit", 4, 3.5), ("5-bit", 5, 3.5))


def transform(images: np.ndarray, dims: int, n_bits: int | None, clip: float | None):
    """The client's side of a head of this shape: PCA, then (optionally) per-dimension integer steps."""
    mean, axes = pca(images, dims)
    if n_bits is None:
        return lambda v: (v - mean) @ axes.T
    q_max = 2 ** (n_bits - 1) - 1
    step = clip * ((images - mean) @ axes.T).std(axis=0) / q_max
    return lambda v: np.clip(np.rint(((v - mean) @ axes.T) / step), -q_max - 1, q_max) * step


def fold_scores(gallery: Gallery, dims: int, n_bits: int | None, clip: float | None) -> tuple[list, list, list]:
    """Per held-out fold: accuracy, TAR at FMR 1e-3 and the FMR measured there, for a head of this shape."""
    accuracy, tar, fmr = [], [], []
    for f in range(gallery.n_folds):
        a, b, same, images = gallery.training_pairs(f)
        project = transform(images, dims, n_bits, clip)
        threshold = best_threshold(np.linalg.norm(project(a) - project(b), axis=1), same)
        scorer = Scorer(project(gallery.vectors))
        test = gallery.pair_fold == f
        held_out = scorer(gallery.pair_left[test], gallery.pair_right[test])
        accuracy.append(float(np.mean((held_out < threshold) == gallery.pair_same[test])))
        impostors = np.concatenate([scorer(*gallery.impostors[g]) for g in range(gallery.n_folds) if g != f])
        strict = threshold_at_fmr(impostors, 1e-3)
        tar.append(float(np.mean(scorer(*gallery.genuine(f)) < strict)))
        fmr.append(float(np.mean(scorer(*gallery.impostors[f]) < strict)))
    return accuracy, tar, fmr


def measure(gallery: Gallery, dims: int, n_bits: int | None, clip: float | None) -> dict:
    accuracy, tar, fmr = fold_scores(gallery, dims, n_bits, clip)
    return {
        "accuracy_mean": float(np.mean(accuracy)),
        "accuracy_std": float(np.std(accuracy, ddof=1)),
        "tar_at_fmr_1e-3_mean": float(np.mean(tar)),
        "fmr_measured_mean": float(np.mean(fmr)),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lfw-dir", help="LFW root (default: $LFW_DIR)")
    parser.add_argument("--encoder", choices=ENCODERS, default=DEFAULT_ENCODER)
    parser.add_argument("--dims", type=int, nargs="+", default=list(DIMS), help="default: %(default)s")
    args = parser.parse_args(argv)
    lfw = open_lfw_for_cli(args.lfw_dir)
    data, _ = embed_lfw(lfw, args.encoder)
    view2 = lfw.view2()
    gallery = Gallery(view2, data.vectors[[data.index[p] for p in unique_images(view2)]])
    rows = [
        {
            "dims": 128,
            "shape": "float (all of PCA = the descriptor's own distance)",
            **measure(gallery, 128, None, None),
        }
    ]
    for dims in args.dims:
        for shape, n_bits, clip in SHAPES:
            rows.append({"dims": dims, "shape": shape, "clip_sigma": clip, **measure(gallery, dims, n_bits, clip)})
            print(json.dumps(rows[-1]), flush=True)
    report = {
        "protocol": __doc__.strip().split("\n\n", 1)[1],
        "variant": lfw.variant(),
        "encoder": args.encoder,
        "rows": rows,
    }
    METRICS.mkdir(parents=True, exist_ok=True)
    name = "head_ceilings.json" if args.encoder == "dlib" else f"head_ceilings_{args.encoder}.json"
    (METRICS / name).write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
