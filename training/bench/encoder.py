"""Client encoder benchmark: latency per stage and TTA mode, ONNX size, fidelity to dlib.

    python -m training.bench.encoder [--lfw-dir PATH] [--runs 30] [--out artifacts/metrics/encoder_bench.json]

Latency is for one 250x250 photo (an LFW image when LFW is available, else the bundled
astronaut portrait resized to 250x250): decode, detect, align, embed; median and p90 over
`--runs` after warm-up. Fidelity: the ONNX model against dlib's own `compute_face_descriptor`
on the same aligned chips (max abs difference, min cosine similarity).
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from client_encoder.align import TTA_VIEWS
from client_encoder.encoder import FaceEncoder
from client_encoder.models import dlib_resnet_source_path
from privface.resources import EXAMPLES_DIR
from privface_core.errors import NoFaceError
from training.lfw import LFW, LFWNotFound, unique_images
from training.machine import machine_info
from training.paths import METRICS

BUNDLED_PHOTO = EXAMPLES_DIR / "astronaut.jpg"


def _photos(lfw_dir: str | None, count: int) -> tuple[list[bytes], str]:
    try:
        paths = unique_images(LFW(lfw_dir).view2())
        step = max(1, len(paths) // count)
        return [p.read_bytes() for p in paths[::step][:count]], "LFW (original 250x250 photos)"
    except LFWNotFound:
        buffer = io.BytesIO()
        Image.open(BUNDLED_PHOTO).resize((250, 250)).save(buffer, format="JPEG", quality=95)
        return [buffer.getvalue()], "bundled astronaut portrait, resized to 250x250"


def latency(photo: bytes, tta: str, runs: int) -> dict:
    encoder = FaceEncoder(tta=tta, encoder="dlib")
    for _ in range(3):
        encoder.encode(photo)
    stages: dict[str, list[float]] = {}
    totals = []
    for _ in range(runs):
        start = time.perf_counter()
        timings = encoder.encode(photo).timings_ms
        totals.append(1e3 * (time.perf_counter() - start))
        for stage, ms in timings.items():
            stages.setdefault(stage, []).append(ms)
    return {
        "views": len(TTA_VIEWS[tta]),
        "total_ms_median": round(float(np.median(totals)), 2),
        "total_ms_p90": round(float(np.percentile(totals, 90)), 2),
        "stage_ms_median": {k: round(float(np.median(v)), 2) for k, v in stages.items()},
    }


def fidelity(photos: list[bytes]) -> dict:
    try:
        import dlib
    except ImportError:
        return {"skipped": "dlib-bin not installed"}
    resnet = dlib.face_recognition_model_v1(str(dlib_resnet_source_path()))
    encoder = FaceEncoder(tta="jitter", encoder="dlib")
    chips = []
    for photo in photos:
        try:
            chips.append(encoder.locate(photo).chips[:4])  # the plain chip and three jittered views
        except NoFaceError:
            continue  # fidelity compares chips; a photo without a face has none
    chips_arr = np.concatenate(chips)
    ours = encoder.embedder.embed_chips(chips_arr).astype(np.float64)
    theirs = np.array([resnet.compute_face_descriptor(np.ascontiguousarray(c)) for c in chips_arr])
    cosine = (ours * theirs).sum(1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(theirs, axis=1)
    return {
        "chips_compared": len(chips_arr),
        "max_abs_diff": float(np.abs(ours - theirs).max()),
        "min_cosine": float(cosine.min()),
        "reference": f"dlib {dlib.__version__} face_recognition_model_v1.compute_face_descriptor on the same chips",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lfw-dir", help="LFW root (default: $LFW_DIR; the bundled photo without it)")
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--out", type=Path, default=METRICS / "encoder_bench.json")
    args = parser.parse_args(argv)

    photos, photo_source = _photos(args.lfw_dir, 40)
    encoder = FaceEncoder(tta="none", encoder="dlib")
    report = {
        "machine": {**machine_info(), "python": platform.python_version()},
        "photo": photo_source,
        "runs": args.runs,
        "onnx_file": encoder.embedder.model_path.name,
        "onnx_mb": round(encoder.embedder.model_path.stat().st_size / 1e6, 2),
        "onnx_sha256": encoder.model_sha256,
        "latency": {tta: latency(photos[0], tta, args.runs) for tta in TTA_VIEWS},
        "fidelity_vs_dlib": fidelity(photos),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    for tta, r in report["latency"].items():
        print(f"tta={tta:<6} ({r['views']:>2} views): {r['total_ms_median']:.1f} ms median, {r['stage_ms_median']}")
    print(f"ONNX {report['onnx_mb']} MB; fidelity {report['fidelity_vs_dlib']}; wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
