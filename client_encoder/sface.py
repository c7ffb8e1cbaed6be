"""OpenCV Zoo's YuNet detector and SFace recogniser: photo -> 5 points -> ArcFace 112x112 chip -> 128-d unit vector.

YuNet's decoding is OpenCV's own (`cv2.FaceDetectorYN`); the chip is the ArcFace similarity warp that
OpenCV's `FaceRecognizerSF.alignCrop` computes (tests check it against OpenCV); SFace runs in ONNX Runtime.
Model files ship in `artifacts/encoder/` with OpenCV Zoo's licences (SFace Apache-2.0, YuNet MIT).
"""

from __future__ import annotations

import threading

import cv2
import numpy as np
import onnxruntime as ort

from client_encoder.detect import Face
from client_encoder.models import SFACE, YUNET, verified_model
from privface_core.errors import ArtifactError

ARCFACE_CHIP = 112
# ArcFace's template for the 5 points on a 112x112 chip: eyes, nose tip, mouth corners (image left first).
ARCFACE_TEMPLATE = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]]
)
# OpenCV's default is 0.9; 0.8 kept LFW's labelled faces that 0.9 lost to a face at the border (View 1).
YUNET_SCORE = 0.8
YUNET_NMS = 0.3
# YuNet misses faces larger than ~500 px: a photo with no face found is tried again on a copy this size.
YUNET_RETRY_SIDE = 640
# Detection runs on a copy no larger than this (long side); points are mapped back to the full image.
YUNET_MAX_SIDE = 1600
# Orientation: YuNet scores an upright face higher than the same face turned (LFW and the example photos:
# 0.89-0.95 upright, at most 0.88 turned). An upright score this high is taken as it is; otherwise the
# three quarter turns are scored too and the photo is turned when one beats upright by TURN_MARGIN.
UPRIGHT_SCORE = 0.9
TURN_MARGIN = 0.03


def similarity_transform(points: np.ndarray, template: np.ndarray = ARCFACE_TEMPLATE) -> np.ndarray:
    """The 2x3 least-squares similarity (rotation, uniform scale, shift; no reflection) taking
    `points` onto `template` (Umeyama's solution, as OpenCV's alignCrop computes it)."""
    src = np.asarray(points, np.float64)
    dst = np.asarray(template, np.float64)
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    cov = dst_c.T @ src_c / len(src)
    u, s, vt = np.linalg.svd(cov)
    sign = np.ones(2)
    if np.linalg.det(cov) < 0:
        sign[1] = -1
    rotation = u @ np.diag(sign) @ vt
    scale = (s * sign).sum() / src_c.var(axis=0).sum()
    matrix = np.zeros((2, 3))
    matrix[:, :2] = scale * rotation
    matrix[:, 2] = dst_mean - scale * rotation @ src_mean
    return matrix


def align_arcface(pixels: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """The 112x112 RGB chip SFace expects: the 5 points warped onto ArcFace's template (bilinear)."""
    matrix = similarity_transform(landmarks)
    return cv2.warpAffine(pixels, matrix, (ARCFACE_CHIP, ARCFACE_CHIP), flags=cv2.INTER_LINEAR)


def _resized(pixels: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """A copy whose long side is at most max_side (area averaging), and the factor back to full size."""
    long_side = max(pixels.shape[:2])
    if long_side <= max_side:
        return pixels, 1.0
    factor = long_side / max_side
    size = (max(1, round(pixels.shape[1] / factor)), max(1, round(pixels.shape[0] / factor)))
    small = cv2.resize(pixels, size, interpolation=cv2.INTER_AREA)
    return small, pixels.shape[1] / small.shape[1]


class YuNetDetector:
    """YuNet (OpenCV Zoo, MIT): faces with a box, 5 ArcFace-style points and a score; largest first."""

    def __init__(self, model_path: str | None = None, score_threshold: float = YUNET_SCORE) -> None:
        self.model_path = verified_model(YUNET, model_path)
        self.score_threshold = score_threshold
        self._local = threading.local()  # FaceDetectorYN keeps its input size: one per thread

    def _detector(self, width: int, height: int) -> cv2.FaceDetectorYN:
        detector = getattr(self._local, "detector", None)
        if detector is None:
            try:
                detector = cv2.FaceDetectorYN.create(
                    str(self.model_path), "", (width, height), self.score_threshold, YUNET_NMS, 5000
                )
            except cv2.error as err:
                raise ArtifactError(f"{self.model_path}: OpenCV cannot load it as YuNet") from err
            self._local.detector = detector
        detector.setInputSize((width, height))
        return detector

    def _detect_at(self, pixels: np.ndarray, max_side: int) -> list[tuple[np.ndarray, np.ndarray, float]]:
        small, factor = _resized(pixels, max_side)
        bgr = np.ascontiguousarray(small[:, :, ::-1])
        _, rows = self._detector(bgr.shape[1], bgr.shape[0]).detect(bgr)
        if rows is None:
            return []
        found = []
        for row in rows:
            x, y, w, h = (float(v) * factor for v in row[:4])
            found.append((np.array([x, y, x + w, y + h]), row[4:14].reshape(5, 2).astype(np.float64) * factor, row[14]))
        return found

    def _detect_upright(self, pixels: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, float]]:
        found = self._detect_at(pixels, YUNET_MAX_SIDE)
        if not found and max(pixels.shape[:2]) > YUNET_RETRY_SIDE:
            found = self._detect_at(pixels, YUNET_RETRY_SIDE)
        return found

    def detect(self, pixels: np.ndarray) -> list[Face]:
        """Every face found, largest first."""
        faces = []
        for box, points, score in self._detect_upright(pixels):
            left, top = np.floor(box[:2]).astype(int)
            right, bottom = np.ceil(box[2:]).astype(int)
            faces.append(Face((int(left), int(top), int(right), int(bottom)), points, float(score), "yunet"))
        return sorted(faces, key=lambda face: -face.area)

    def _best_score(self, pixels: np.ndarray) -> float:
        return max((float(score) for _, _, score in self._detect_upright(pixels)), default=0.0)

    def orient(self, pixels: np.ndarray) -> tuple[int, list[Face] | None]:
        """Quarter turns (np.rot90's sense) that make the photo's face upright (0 for most photos), and, when
        none are needed, the faces found on the photo as it is (so they need not be detected again)."""
        faces = self.detect(pixels)
        upright = max((face.score for face in faces), default=0.0)
        if upright >= UPRIGHT_SCORE:
            return 0, faces
        scores = {turns: self._best_score(np.ascontiguousarray(np.rot90(pixels, turns))) for turns in (1, 2, 3)}
        best = max(scores, key=scores.get)
        if scores[best] >= max(upright + TURN_MARGIN, self.score_threshold):
            return best, None
        return 0, faces


class SFaceEmbedder:
    """SFace (OpenCV Zoo, Apache-2.0) in ONNX Runtime: 112x112 RGB chips in, unit 128-d vectors out."""

    def __init__(self, model_path: str | None = None, threads: int | None = None) -> None:
        self.model_path = verified_model(SFACE, model_path)
        options = ort.SessionOptions()
        options.log_severity_level = 3  # the file's graph lists its weights as inputs: a warning per weight
        if threads:
            options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(self.model_path), options, providers=["CPUExecutionProvider"])
        except Exception as err:  # ONNX Runtime's errors share no narrower base class
            raise ArtifactError(f"{self.model_path}: ONNX Runtime cannot load it") from err
        self.input_name = self.session.get_inputs()[0].name

    def embed_chips(self, chips: np.ndarray) -> np.ndarray:
        """Unit vectors (n, 128) float32 for chips (n, 112, 112, 3) RGB 0..255."""
        chips = np.asarray(chips)
        if chips.ndim != 4 or chips.shape[1:] != (ARCFACE_CHIP, ARCFACE_CHIP, 3):
            raise ValueError(f"expected chips of shape (n, 112, 112, 3), got {chips.shape}")
        if not len(chips):
            return np.zeros((0, 128), np.float32)
        batch = np.ascontiguousarray(chips.transpose(0, 3, 1, 2), dtype=np.float32)
        # The graph's batch size is fixed at 1.
        out = np.concatenate([self.session.run(None, {self.input_name: chip[None]})[0] for chip in batch])
        return (out / np.linalg.norm(out, axis=1, keepdims=True)).astype(np.float32)


def arcface_points_in_box(box: tuple[int, int, int, int]) -> np.ndarray:
    """ArcFace's 5 template points laid over a box (the centre-box policy of LFW evaluation)."""
    left, top, right, bottom = box
    return np.array([left, top], np.float64) + ARCFACE_TEMPLATE / ARCFACE_CHIP * np.array([right - left, bottom - top])
