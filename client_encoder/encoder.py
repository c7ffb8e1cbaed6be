"""`FaceEncoder`: photo -> detect -> align -> ONNX embed (+ test-time augmentation)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from client_encoder.align import TTA_VIEWS, align
from client_encoder.detect import Face, FaceDetector, primary_face
from client_encoder.embedder import FaceEmbedder
from client_encoder.images import ImageInput, load_image
from client_encoder.models import REPO_ROOT

log = logging.getLogger(__name__)

# dlib's published rule for its raw descriptors; replaced by the LFW-calibrated threshold of
# `python -m training.eval_clear` (artifacts/encoder/calibration.json) when that file exists.
DLIB_THRESHOLD = 0.6
CALIBRATION_PATH = REPO_ROOT / "artifacts" / "encoder" / "calibration.json"


class NoFaceError(ValueError):
    """No face was found in the image."""


@dataclass
class FaceEncoding:
    """The embedding of one photo and how it was obtained."""

    embedding: np.ndarray  # (128,) float32
    face: Face  # the face that was embedded
    faces: list[Face]  # every face found
    tta: str
    timings_ms: dict[str, float] = field(default_factory=dict)

    @property
    def note(self) -> str | None:
        if len(self.faces) > 1:
            return f"{len(self.faces)} faces found; used the largest, most central one at box {list(self.face.box)}"
        return None

    def to_dict(self) -> dict:
        return {
            "embedding": [round(float(v), 6) for v in self.embedding],
            "face": self.face.to_dict(),
            "faces_found": len(self.faces),
            "note": self.note,
            "tta": self.tta,
            "timings_ms": {k: round(v, 2) for k, v in self.timings_ms.items()},
        }


def load_threshold(tta: str) -> float:
    """The distance threshold calibrated on LFW for this TTA mode, else dlib's 0.6."""
    try:
        calibration = json.loads(CALIBRATION_PATH.read_text())
        return float(calibration["thresholds"][tta])
    except (OSError, KeyError, ValueError):
        return DLIB_THRESHOLD


def distance(a: np.ndarray, b: np.ndarray) -> float:
    """Euclidean distance between two descriptors (dlib's metric)."""
    return float(np.linalg.norm(np.asarray(a, np.float64) - np.asarray(b, np.float64)))


class FaceEncoder:
    """Client-side face pipeline.

    `tta`: "jitter" (default: 18 views, the chip and 8 small shifts/zooms/rotations, each with
    its mirror; ~0.1 s per photo on 2 cores), "flip" (chip + mirror) or "none" (one chip).
    """

    def __init__(
        self,
        model_path: str | Path | None = None,
        tta: str = "jitter",
        cnn_fallback: bool = True,
        threads: int | None = None,
    ) -> None:
        if tta not in TTA_VIEWS:
            raise ValueError(f"tta must be one of {sorted(TTA_VIEWS)}, not {tta!r}")
        self.tta = tta
        self.detector = FaceDetector(use_cnn_fallback=cnn_fallback)
        self.embedder = FaceEmbedder(model_path, threads=threads)
        self.threshold = load_threshold(tta)

    @property
    def model_sha256(self) -> str:
        return self.embedder.sha256

    def detect(self, image: ImageInput) -> list[Face]:
        """Every face in the image, largest first."""
        return self.detector.detect(load_image(image))

    def align(self, image: ImageInput, face: Face | None = None) -> np.ndarray:
        """The aligned 150x150 RGB chip of `face` (default: the primary face)."""
        pixels = load_image(image)
        face = face or self._primary(pixels, self.detector.detect(pixels))
        return align(pixels, face)[0]

    def _primary(self, pixels: np.ndarray, faces: list[Face]) -> Face:
        if not faces:
            raise NoFaceError("no face found in the image")
        return primary_face(faces, pixels.shape)

    def embed_views(self, image: np.ndarray, face: Face, tta: str | None = None) -> np.ndarray:
        """One descriptor per TTA view (n_views, 128), before averaging."""
        return self.embedder.embed_chips(align(image, face, TTA_VIEWS[tta or self.tta]))

    def encode(self, image: ImageInput) -> FaceEncoding:
        """Embedding plus the faces found, the one used and per-stage timings."""
        t0 = time.perf_counter()
        pixels = load_image(image)
        t1 = time.perf_counter()
        faces = self.detector.detect(pixels)
        face = self._primary(pixels, faces)
        t2 = time.perf_counter()
        chips = align(pixels, face, TTA_VIEWS[self.tta])
        t3 = time.perf_counter()
        embedding = self.embedder.embed_chips(chips).mean(axis=0)
        t4 = time.perf_counter()
        encoding = FaceEncoding(
            embedding=embedding.astype(np.float32),
            face=face,
            faces=faces,
            tta=self.tta,
            timings_ms={
                "load": 1e3 * (t1 - t0),
                "detect": 1e3 * (t2 - t1),
                "align": 1e3 * (t3 - t2),
                "embed": 1e3 * (t4 - t3),
            },
        )
        return encoding

    def embed(self, image: ImageInput) -> np.ndarray:
        """The 128-d descriptor of the primary face (raises NoFaceError if there is none)."""
        encoding = self.encode(image)
        if encoding.note:
            log.warning(encoding.note)
        return encoding.embedding

    def embed_many(self, images: Iterable[ImageInput]) -> np.ndarray:
        """Descriptors (n, 128) of many photos; chips of all photos go through ONNX in batches."""
        views = TTA_VIEWS[self.tta]
        chips = []
        for image in images:
            pixels = load_image(image)
            chips.append(align(pixels, self._primary(pixels, self.detector.detect(pixels)), views))
        if not chips:
            return np.zeros((0, 128), np.float32)
        descriptors = self.embedder.embed_chips(np.concatenate(chips))
        return descriptors.reshape(len(chips), len(views), -1).mean(axis=1)

    def compare(self, a: ImageInput, b: ImageInput) -> tuple[float, bool]:
        """(distance, same_person) in clear, with this encoder's threshold."""
        d = distance(self.embed(a), self.embed(b))
        return d, d < self.threshold
