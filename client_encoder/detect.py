"""Face detection and 5-point landmarks with dlib's models (dlib-bin runtime, weights from
face-recognition-models). HOG first (fast); if it finds nothing, HOG on a 2x upsampled image,
then dlib's CNN (MMOD) detector on a copy of at most 800 px, which finds the rotated and small faces HOG misses."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import cached_property

import dlib
import numpy as np

from client_encoder.images import MIN_SIDE
from client_encoder.models import cnn_detector_path, shape_predictor_5_path
from privface_core.errors import InvalidImageError

# Detection runs on a copy no larger than this (long side); landmarks use the full image.
DETECT_MAX_SIDE = 1600
# The CNN fallback's copy is smaller still: its cost grows with the pixels (a blank 1600x1600 photo
# took 26 s and 2.6 GB, 800x800 7 s and 0.7 GB), and it only runs when HOG found no face at all.
CNN_MAX_SIDE = 800
# HOG fires weakly on textures, far below real faces' scores: a detection scoring under
# this fraction of the best one in the same photo is dropped as a false positive.
MIN_RELATIVE_SCORE = 0.5


@dataclass(frozen=True)
class Face:
    """A detected face: box (left, top, right, bottom) in image pixels, 5 landmarks (x, y), score."""

    box: tuple[int, int, int, int]
    landmarks: np.ndarray  # (5, 2): dlib's order, outer/inner eye corners of each eye, nose base
    score: float
    detector: str  # "hog", "hog-upsampled", "cnn" or "given-box"

    @property
    def area(self) -> int:
        left, top, right, bottom = self.box
        return max(0, right - left) * max(0, bottom - top)

    @property
    def centre(self) -> tuple[float, float]:
        left, top, right, bottom = self.box
        return (left + right) / 2.0, (top + bottom) / 2.0

    def to_dict(self) -> dict:
        return {
            "box": list(self.box),
            "landmarks": np.round(self.landmarks, 2).tolist(),
            "score": round(float(self.score), 4),
            "detector": self.detector,
        }


def _shrunk(image: np.ndarray, max_side: int) -> tuple[np.ndarray, int]:
    """Every step-th pixel of the image, the smallest step that brings its long side to max_side; and the step."""
    step = -(-max(image.shape[:2]) // max_side)
    if step <= 1:
        return image, 1
    return np.ascontiguousarray(image[::step, ::step]), step


def _enlarged(rect: dlib.rectangle, step: int) -> dlib.rectangle:
    """A box found on a `_shrunk` copy, in the coordinates of the image it was taken from."""
    return dlib.rectangle(rect.left() * step, rect.top() * step, rect.right() * step, rect.bottom() * step)


def primary_face(faces: list[Face], image_shape: tuple[int, ...]) -> Face:
    """The face a user most likely means: large and near the centre (as in a portrait or LFW)."""
    height, width = image_shape[:2]
    half_diagonal = 0.5 * float(np.hypot(width, height))

    def weight(face: Face) -> float:
        cx, cy = face.centre
        off_centre = np.hypot(cx - width / 2.0, cy - height / 2.0) / half_diagonal
        return face.area * max(0.05, 1.0 - off_centre) ** 2

    return max(faces, key=weight)


class FaceDetector:
    """dlib HOG detector with fallbacks, plus dlib's 5-point shape predictor.

    One instance may serve several threads (the app's sessions, a client's workers): dlib's detectors are
    not safe under concurrent calls (two threads in one HOG scan corrupt the heap), so detection runs one
    call at a time; the shape predictor is documented thread-safe and is not serialised.
    """

    def __init__(self, use_cnn_fallback: bool = True) -> None:
        self.use_cnn_fallback = use_cnn_fallback
        self._detecting = threading.Lock()
        self._hog = dlib.get_frontal_face_detector()
        self._landmarks = dlib.shape_predictor(str(shape_predictor_5_path()))

    @cached_property
    def _cnn(self) -> dlib.cnn_face_detection_model_v1:
        # Loaded on first need: most photos never reach this fallback.
        return dlib.cnn_face_detection_model_v1(str(cnn_detector_path()))

    def _boxes(self, image: np.ndarray) -> tuple[list[tuple[dlib.rectangle, float]], str]:
        for upsample, name in ((0, "hog"), (1, "hog-upsampled")):
            if upsample and max(image.shape[:2]) > DETECT_MAX_SIDE // 2:
                break  # a large image has no faces too small for HOG at its own scale
            rects, scores, _ = self._hog.run(image, upsample, 0.0)
            if len(rects):
                return list(zip(rects, scores, strict=True)), name
        if not self.use_cnn_fallback:
            return [], "none"
        small, step = _shrunk(image, CNN_MAX_SIDE)
        if min(small.shape[:2]) >= MIN_SIDE:  # a thin strip, shrunk for detection
            found = self._cnn(small, 1 if max(small.shape[:2]) <= 400 else 0)
            if len(found):
                return [(_enlarged(d.rect, step), float(d.confidence)) for d in found], "cnn"
        return [], "none"

    def detect(self, image: np.ndarray) -> list[Face]:
        """All faces in an RGB uint8 image, largest first."""
        if image.ndim != 3 or min(image.shape[:2]) < MIN_SIDE:
            # dlib's CNN raises on (and may corrupt the heap with) images smaller than its filters:
            # such an image must never reach it, whoever calls (load_image refuses it first).
            raise InvalidImageError(f"image is too small for face detection: shape {image.shape}")
        small, step = _shrunk(image, DETECT_MAX_SIDE)
        with self._detecting:
            boxes, name = self._boxes(small)
        if boxes:
            best = max(score for _, score in boxes)
            boxes = [(rect, score) for rect, score in boxes if score >= MIN_RELATIVE_SCORE * best]
        faces = []
        for rect, score in boxes:
            faces.append(self.landmarks(image, _enlarged(rect, step), float(score), name))
        return sorted(faces, key=lambda f: f.area, reverse=True)

    def landmarks(
        self, image: np.ndarray, rect: dlib.rectangle, score: float = 0.0, detector: str = "given-box"
    ) -> Face:
        shape = self._landmarks(image, rect)
        points = np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64)
        box = (rect.left(), rect.top(), rect.right(), rect.bottom())
        return Face(box=box, landmarks=points, score=score, detector=detector)

    def face_in_box(self, image: np.ndarray, box: tuple[int, int, int, int]) -> Face:
        """Landmarks inside a box the caller supplies (e.g. a known crop), no detection."""
        return self.landmarks(image, dlib.rectangle(*box))
