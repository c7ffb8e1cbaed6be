"""LFW accuracy of the client encoder in clear (no encryption).

    python -m training.eval_clear --lfw-dir PATH [--out artifacts/metrics/lfw_clear.json]

View 2 protocol: 6,000 pairs in 10 folds; each fold is scored with the distance threshold that
is best on the other 9; mean +- std over folds. Every TTA mode is reported; the headline is
the encoder's default mode, which was chosen on View 1 (pairsDevTrain -> pairsDevTest), also
reported here. Images where no detector found a face are counted and listed with what was done.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections import Counter
from pathlib import Path

from client_encoder.align import TTA_VIEWS
from client_encoder.encoder import CENTRE_BOX, DLIB_THRESHOLD, FaceEncoder, calibration_path
from training.embeddings import ImageEmbeddings, embed_images, encoder_vectors
from training.lfw import LFW, Pair, open_lfw_for_cli, unique_images
from training.pairs import PairData, folds, labels
from training.paths import METRICS
from training.protocol import accuracy, best_threshold, ten_fold

# View 1 ties the TTA modes (by_tta in lfw_clear.json); more views = lower-variance descriptors, as dlib does.
DEFAULT_TTA = "jitter"


def tta_modes(emb: ImageEmbeddings, view2: list[Pair], dev_train: list[Pair], dev_test: list[Pair]) -> dict:
    """Per TTA mode: the 10-fold result, accuracy at dlib's threshold, the all-folds threshold and,
    where View 1 is given, its dev-test accuracy at the dev-train threshold."""
    modes = {}
    for tta in TTA_VIEWS:
        data = PairData(emb, tta)
        d, same = data.distances(view2), labels(view2)
        result = ten_fold(d, same, folds(view2))
        result["accuracy_at_dlib_threshold_0.6"] = accuracy(d, same, DLIB_THRESHOLD)
        result["threshold_all_folds"] = best_threshold(d, same)
        if dev_train:
            t = best_threshold(data.distances(dev_train), labels(dev_train))
            result["view1_dev_test_accuracy"] = accuracy(data.distances(dev_test), labels(dev_test), t)
            result["view1_threshold"] = t
        modes[tta] = result
    return modes


def other_encoders(paths: list[Path], view2: list[Pair], dev_train: list[Pair], dev_test: list[Pair], **kw) -> dict:
    """SFace and fused, as tta_modes reports dlib's modes (their own thresholds: other distances)."""
    report = {}
    for name in ("sface", "fused"):
        data = PairData(encoder_vectors(paths, name, desc=f"LFW ({name})", **kw))
        d, same = data.distances(view2), labels(view2)
        result = ten_fold(d, same, folds(view2))
        result["threshold_all_folds"] = best_threshold(d, same)
        if dev_train:
            t = best_threshold(data.distances(dev_train), labels(dev_train))
            result["view1_dev_test_accuracy"] = accuracy(data.distances(dev_test), labels(dev_test), t)
        report[name] = result
    return report


def evaluate(lfw: LFW, progress: bool = True, cache: Path | None = None) -> dict:
    view2 = lfw.view2()
    has_view1 = (lfw.root / "pairsDevTrain.txt").is_file() and (lfw.root / "pairsDevTest.txt").is_file()
    dev_train, dev_test = lfw.view1() if has_view1 else ([], [])
    paths = unique_images(view2 + dev_train + dev_test)
    encoder = FaceEncoder(tta="jitter", encoder="dlib")
    started = time.time()
    emb = embed_images(paths, encoder, cache_path=cache, progress=progress, desc=f"LFW {lfw.variant()}")
    modes = tta_modes(emb, view2, dev_train, dev_test)
    encoders = other_encoders(paths, view2, dev_train, dev_test, cache_path=cache, progress=progress)

    view2_images = set(unique_images(view2))
    in_view2 = [i for i, p in enumerate(emb.paths) if p in view2_images]
    no_face = [str(emb.paths[i].relative_to(lfw.images)) for i in in_view2 if emb.detector[i] == "centre-box"]
    headline = modes[DEFAULT_TTA]
    return {
        "variant": lfw.variant(),
        "protocol": "LFW View 2 (pairs.txt): 6000 pairs, 10 folds, threshold chosen on the other 9 folds",
        "mode": "clear (float32 ONNX descriptors, Euclidean distance)",
        "tta": DEFAULT_TTA,
        "tta_views": len(TTA_VIEWS[DEFAULT_TTA]),
        "mean_accuracy": headline["mean_accuracy"],
        "std": headline["std"],
        "fold_accuracies": headline["fold_accuracies"],
        "fold_thresholds": headline["fold_thresholds"],
        "by_tta": modes,
        "by_encoder": encoders,
        "tta_choice": "the encoder's default TTA; View 1 (pairsDevTrain threshold -> pairsDevTest) per mode in by_tta",
        "images_view2": len(view2_images),
        "detector_counts_view2": dict(Counter(emb.detector[i] for i in in_view2)),
        "multi_face_images_view2": sum(1 for i in in_view2 if emb.n_faces[i] > 1),
        "no_face": {
            "count": len(no_face),
            "action": "dlib's 5-point predictor placed on a fixed central box "
            f"(fractions {CENTRE_BOX} of width/height: LFW crops centre the labelled face), then aligned and embedded",
            "images": no_face,
        },
        "encoder_onnx_sha256": encoder.model_sha256,
        "seconds": round(time.time() - started, 1),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lfw-dir", help="LFW root (default: $LFW_DIR)")
    parser.add_argument("--out", type=Path, default=METRICS / "lfw_clear.json")
    parser.add_argument("--cache", type=Path, default=None, help="embedding cache (default: user cache dir)")
    parser.add_argument(
        "--calibrate", action="store_true", help=f"also write per-TTA thresholds (all 10 folds) to {calibration_path()}"
    )
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    lfw = open_lfw_for_cli(args.lfw_dir)
    report = evaluate(lfw, progress=not args.no_progress, cache=args.cache)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    if args.calibrate:
        measured = {**report["by_tta"], **report["by_encoder"]}
        thresholds = {key: round(r["threshold_all_folds"], 4) for key, r in measured.items()}
        calibration_path().write_text(
            json.dumps(
                {"source": f"LFW {report['variant']} View 2, all 6000 pairs", "thresholds": thresholds}, indent=2
            )
            + "\n"
        )
    for tta, r in {**report["by_tta"], **report["by_encoder"]}.items():
        view1 = f", View 1 dev-test {100 * r['view1_dev_test_accuracy']:.2f}%" if "view1_dev_test_accuracy" in r else ""
        print(f"{report['variant']:>13} tta={tta:<6} {100 * r['mean_accuracy']:.2f}% +- {100 * r['std']:.2f}{view1}")
    print(f"no face found: {report['no_face']['count']} images; wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
