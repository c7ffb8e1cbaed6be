"""`FaceEncoder`: photo -> locate (detect -> primary face -> align) -> ONNX embed (+ test-time augmentation)."""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from client_encoder.align import TTA_VIEWS, align, views_of
from client_encoder.detect import Face, FaceDetector, primary_face
from client_encoder.embedder import FaceEmbedder
from client_encoder.images import ImageInput, load_image
from privface_core.errors import ArtifactError, NoFaceError
from privface_core.resources import artifacts_dir

log = logging.getLogger(__name__)

# dlib's published rule for its raw descriptors; replaced by the LFW-calibrated threshold of
# `python -m training.eval_clear` (artifacts/encoder/calibration.json) when that file exists.
DLIB_THRESHOLD = 0.6
# Fraction of width/height where LFW's Viola-Jones crops put the labelled face: the `centre-box`
# no-face policy places the landmark predictor there (for evaluation on LFW only).
CENTRE_BOX = (0.32, 0.34, 0.68, 0.72)
NO_FACE_POLICIES = ("error", "centre-box")


@dataclass
class LocatedFace:
    """One photo after the locate step: decoded pixels, every face found, the one used, its chips."""

    pixels: np.ndarray  # (H, W, 3) uint8 RGB
    faces: list[Face]  # every face found, largest first (empty under the centre-box policy)
    face: Face  # the face used: the primary one, or the centre box
    chips: np.ndarray  # (n_views, 150, 150, 3) uint8: the aligned chip first, then the TTA views
    timings_ms: dict[str, float] = field(default_factory=dict)

    @property
    def chip(self) -> np.ndarray:
        """The aligned 150x150 chip (dlib's get_face_chip geometry)."""
        return self.chips[0]

    @property
    def detector(self) -> str:
        return self.face.detector if self.faces else "centre-box"

    @property
    def note(self) -> str | None:
        if len(self.faces) > 1:
            return f"{len(self.faces)} faces found; used the largest, most central one at box {list(self.face.box)}"
        return None


@dataclass
class FaceEncoding:
    """The embedding of one photo and how it was obtained."""

    embedding: np.ndarray  # (128,) float32
    located: LocatedFace
    tta: str
    timings_ms: dict[str, float] = field(default_factory=dict)

    @property
    def face(self) -> Face:
        return self.located.face

    @property
    def faces(self) -> list[Face]:
        return self.located.faces

    @property
    def note(self) -> str | None:
        return self.located.note

    def to_dict(self) -> dict:
        return {
            "embedding": [round(float(v), 6) for v in self.embedding],
            "face": self.face.to_dict(),
            "faces_found": len(self.faces),
            "note": self.note,
            "tta": self.tta,
            "timings_ms": {k: round(v, 2) for k, v in self.timings_ms.items()},
        }


def calibration_path() -> Path:
    """LFW-calibrated distance thresholds per TTA mode (written by `python -m training.eval_clear`)."""
    return artifacts_dir() / "encoder" / "calibration.json"


def load_threshold(tta: str) -> float:
    """The distance threshold calibrated on LFW for this TTA mode.

    Without the calibration file (a copy without the shipped artifacts, whose encoder is converted into
    the user cache instead) dlib's 0.6 is used and a warning says so, as verdicts shift with it; a file
    that is there but unusable is an error rather than a silent default.
    """
    path = calibration_path()
    if not path.is_file():
        log.warning("no calibration at %s: using dlib's default threshold %s instead", path, DLIB_THRESHOLD)
        return DLIB_THRESHOLD
    try:
        threshold = float(json.loads(path.read_text())["thresholds"][tta])
    except (OSError, KeyError, TypeError, ValueError) as err:
        raise ArtifactError(f"{path}: not a calibration file with a threshold for tta={tta!r}") from err
    if not 0 < threshold < math.inf:
        raise ArtifactError(f"{path}: threshold for tta={tta!r} is {threshold}, not a positive distance")
    return threshold


def distance(a: np.ndarray, b: np.ndarray) -> float:
    """Euclidean distance between two descriptors (dlib's metric)."""
    return float(np.linalg.norm(np.asarray(a, np.float64) - np.asarray(b, np.float64)))


class FaceEncoder:
    """Client-side face pipeline.

    `tta`: "jitter" (default: 18 views, the chip and 8 small shifts/zooms/rotations, each with
    its mirror), "flip" (chip + mirror) or "none" (one chip).
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

    def locate(self, image: ImageInput, no_face: str = "error", tta: str | None = None) -> LocatedFace:
        """The one locate step: decode -> detect -> primary face -> aligned chips (one per view of `tta`,
        the encoder's own mode by default; `client_encoder.align.views_of` names them).

        `no_face="error"` raises NoFaceError; `"centre-box"` (LFW evaluation only) places the
        landmark predictor on a fixed central box instead, and the result says so (`detector`).
        """
        if no_face not in NO_FACE_POLICIES:
            raise ValueError(f"no_face must be one of {NO_FACE_POLICIES}, not {no_face!r}")
        t0 = time.perf_counter()
        pixels = image.pixels if isinstance(image, LocatedFace) else load_image(image)
        t1 = time.perf_counter()
        faces = self.detector.detect(pixels)
        if faces:
            face = primary_face(faces, pixels.shape)
        elif no_face == "centre-box":
            height, width = pixels.shape[:2]
            left, top, right, bottom = CENTRE_BOX
            box = (int(left * width), int(top * height), int(right * width), int(bottom * height))
            face = self.detector.face_in_box(pixels, box)
        else:
            raise NoFaceError("no face found in the image")
        t2 = time.perf_counter()
        chips = align(pixels, face, views_of(tta or self.tta))
        t3 = time.perf_counter()
        timings = {"load": 1e3 * (t1 - t0), "detect": 1e3 * (t2 - t1), "align": 1e3 * (t3 - t2)}
        return LocatedFace(pixels, faces, face, chips, timings)

    def align(self, image: ImageInput) -> np.ndarray:
        """The aligned 150x150 RGB chip of the primary face."""
        return self.locate(image, tta="none").chip

    def encode(self, image: ImageInput | LocatedFace) -> FaceEncoding:
        """Embedding plus the faces found, the one used, its chips and per-stage timings."""
        located = image if isinstance(image, LocatedFace) else self.locate(image)
        start = time.perf_counter()
        embedding = self.embedder.embed_chips(located.chips).mean(axis=0)
        timings = {**located.timings_ms, "embed": 1e3 * (time.perf_counter() - start)}
        return FaceEncoding(embedding.astype(np.float32), located, self.tta, timings)

    def embed(self, image: ImageInput) -> np.ndarray:
        """The 128-d descriptor of the primary face (raises NoFaceError if there is none)."""
        encoding = self.encode(image)
        if encoding.note:
            log.warning(encoding.note)
        return encoding.embedding

    def embed_many(self, images: Iterable[ImageInput]) -> np.ndarray:
        """Descriptors (n, 128) of many photos; chips of all photos go through ONNX in batches."""
        chips = [self.locate(image).chips for image in images]
        if not chips:
            return np.zeros((0, 128), np.float32)
        descriptors = self.embedder.embed_chips(np.concatenate(chips))
        return descriptors.reshape(len(chips), len(TTA_VIEWS[self.tta]), -1).mean(axis=1)

    def compare(self, a: ImageInput, b: ImageInput) -> tuple[float, bool]:
        """(distance, same_person) in clear, with this encoder's threshold."""
        d = distance(self.embed(a), self.embed(b))
        return d, d < self.threshold
