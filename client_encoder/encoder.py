"""`FaceEncoder`: photo -> upright -> locate (detect -> primary face -> align) -> ONNX embed, with one of three
encoders: `fused` (both below, their unit vectors weighted and concatenated: the default, chosen by the rule of
training/encoders.py), `sface` (YuNet + ArcFace chip + SFace) or `dlib` (dlib's detector + chip + ResNet)."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from client_encoder.align import TTA_VIEWS, align, views_of
from client_encoder.detect import Face, FaceDetector, primary_face
from client_encoder.embedder import FaceEmbedder
from client_encoder.images import ImageInput, load_image
from client_encoder.models import SFACE, YUNET, artifacts_dir, ensure_encoder_model, file_sha256
from client_encoder.sface import SFaceEmbedder, YuNetDetector, align_arcface, arcface_points_in_box
from privface_core.errors import ArtifactError, EnrolmentError, NoFaceError

log = logging.getLogger(__name__)

ENCODERS = ("sface", "dlib", "fused")
DEFAULT_ENCODER = "fused"
# dlib's published rule for its raw descriptors; replaced by the LFW-calibrated threshold of
# `python -m training.eval_clear` (artifacts/encoder/calibration.json) when that file exists.
DLIB_THRESHOLD = 0.6
# SFace's unit vectors: OpenCV Zoo's cosine threshold 0.363 as a Euclidean distance, sqrt(2 - 2 * 0.363).
SFACE_THRESHOLD = 1.1287
# Fused vector = [w * dlib unit vector, sqrt(1 - w^2) * SFace unit vector]: a unit vector again. w chosen on
# LFW View 1 (artifacts/metrics/encoders.json).
FUSED_DLIB_WEIGHT = 0.9
# The fused encoder's dlib part averages the chip and its mirror only: its 18-view TTA costs ~9x the ONNX time.
FUSED_DLIB_TTA = "flip"
# Fraction of width/height where LFW's Viola-Jones crops put the labelled face: the `centre-box`
# no-face policy places the landmarks there (for evaluation on LFW only).
CENTRE_BOX = (0.32, 0.34, 0.68, 0.72)
NO_FACE_POLICIES = ("error", "centre-box")
# Photos one enrolment may combine into a template (the levels are measured up to K = 5: enrolment.json).
MAX_ENROL_PHOTOS = 10
SFACE_VIEWS = {"none": 1, "flip": 2}
SFACE_TTA = "flip"


@dataclass
class LocatedFace:
    """One photo after the locate step of one model: upright pixels, faces found, the one used, its chips."""

    pixels: np.ndarray  # (H, W, 3) uint8 RGB, turned upright
    faces: list[Face]  # every face found, largest first (empty under the centre-box policy)
    face: Face  # the face used: the primary one, or the centre box
    chips: np.ndarray  # (n_views, S, S, 3) uint8: the aligned chip first, then the TTA views
    model: str = "dlib"  # whose detector and chip convention: "dlib" (150 px) or "sface" (112 px)
    turns: int = 0  # quarter turns (counter-clockwise) that made the photo upright
    timings_ms: dict[str, float] = field(default_factory=dict)

    @property
    def chip(self) -> np.ndarray:
        """The aligned chip the model sees."""
        return self.chips[0]

    @property
    def detector(self) -> str:
        return self.face.detector if self.faces else "centre-box"

    @property
    def note(self) -> str | None:
        notes = []
        if self.turns:
            notes.append(f"the photo was turned {90 * self.turns} degrees to make the face upright")
        if len(self.faces) > 1:
            notes.append(
                f"{len(self.faces)} faces found; used the largest, most central one at box {list(self.face.box)}"
            )
        return "; ".join(notes) or None


@dataclass
class FaceEncoding:
    """The embedding of one photo and how it was obtained."""

    embedding: np.ndarray  # (dims,) float32: 128 (sface, dlib) or 256 (fused)
    located: LocatedFace  # the face as the first model saw it (SFace's for sface and fused)
    tta: str
    encoder: str = "dlib"
    parts: dict[str, LocatedFace] = field(default_factory=dict)
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
            "encoder": self.encoder,
            "face": self.face.to_dict(),
            "faces_found": len(self.faces),
            "note": self.note,
            "tta": self.tta,
            "timings_ms": {k: round(v, 2) for k, v in self.timings_ms.items()},
        }


def calibration_path() -> Path:
    """LFW-calibrated distance thresholds (written by `python -m training.eval_clear --calibrate`):
    per TTA mode for dlib, per encoder name for sface and fused."""
    return artifacts_dir() / "encoder" / "calibration.json"


def load_threshold(key: str, default: float = DLIB_THRESHOLD) -> float:
    """The distance threshold calibrated on LFW for `key` (a dlib TTA mode, or "sface" / "fused").

    Without the calibration file the model's published default is used and a warning says so, as verdicts
    shift with it; a file that is there but unusable is an error rather than a silent default.
    """
    path = calibration_path()
    what = f"tta={key!r}" if key in TTA_VIEWS else f"encoder={key!r}"
    if not path.is_file():
        source = "dlib" if key in TTA_VIEWS else "OpenCV Zoo"
        log.warning("no calibration at %s: using %s's default threshold %s instead", path, source, default)
        return default
    try:
        threshold = float(json.loads(path.read_text())["thresholds"][key])
    except (OSError, KeyError, TypeError, ValueError) as err:
        raise ArtifactError(f"{path}: not a calibration file with a threshold for {what}") from err
    if not 0 < threshold < math.inf:
        raise ArtifactError(f"{path}: threshold for {what} is {threshold}, not a positive distance")
    return threshold


def distance(a: np.ndarray, b: np.ndarray) -> float:
    """Euclidean distance between two embeddings (dlib's metric; for unit vectors a function of the cosine)."""
    return float(np.linalg.norm(np.asarray(a, np.float64) - np.asarray(b, np.float64)))


def unit(vector: np.ndarray) -> np.ndarray:
    vector = np.asarray(vector, np.float64)
    return vector / np.linalg.norm(vector, axis=-1, keepdims=True)


def fuse(dlib_vector: np.ndarray, sface_vector: np.ndarray, weight: float = FUSED_DLIB_WEIGHT) -> np.ndarray:
    """The fused encoder's unit vector from dlib's raw descriptor(s) and SFace's unit vector(s)."""
    other = math.sqrt(1.0 - weight * weight)
    return np.concatenate([weight * unit(dlib_vector), other * unit(sface_vector)], axis=-1)


def template_of(embeddings: np.ndarray, encoder: str) -> np.ndarray:
    """One enrolment template from K embeddings of one person: their mean, back on the unit sphere for the
    unit-vector encoders (sface, fused); dlib's raw descriptors are averaged as they are."""
    mean = np.asarray(embeddings, np.float64).mean(axis=0)
    return mean if encoder == "dlib" else unit(mean)


def _centre_box(pixels: np.ndarray) -> tuple[int, int, int, int]:
    height, width = pixels.shape[:2]
    left, top, right, bottom = CENTRE_BOX
    return int(left * width), int(top * height), int(right * width), int(bottom * height)


def _same_face(a: Face, b: Face) -> bool:
    """Whether two models' boxes are the same face: each box's centre lies inside the other."""
    return all(
        other.box[0] <= face.centre[0] <= other.box[2] and other.box[1] <= face.centre[1] <= other.box[3]
        for face, other in ((a, b), (b, a))
    )


class DlibModel:
    """dlib's pipeline: HOG/CNN detection, 5 points, dlib's 150 px chip, the converted ResNet (ONNX)."""

    name = "dlib"

    def __init__(self, model_path=None, tta: str = "jitter", cnn_fallback: bool = True, threads=None) -> None:
        if tta not in TTA_VIEWS:
            raise ValueError(f"tta must be one of {sorted(TTA_VIEWS)}, not {tta!r}")
        self.tta = tta
        self.detector = FaceDetector(use_cnn_fallback=cnn_fallback)
        self.embedder = FaceEmbedder(model_path, threads=threads)

    @property
    def sha256(self) -> str:
        return self.embedder.sha256

    def locate(self, pixels: np.ndarray, no_face: str, tta: str | None = None) -> LocatedFace:
        faces = self.detector.detect(pixels)
        if faces:
            face = primary_face(faces, pixels.shape)
        elif no_face == "centre-box":
            face = self.detector.face_in_box(pixels, _centre_box(pixels))
        else:
            raise NoFaceError("no face found in the image")
        return LocatedFace(pixels, faces, face, align(pixels, face, views_of(tta or self.tta)), "dlib")

    def embed(self, located: LocatedFace) -> np.ndarray:
        return self.embedder.embed_chips(located.chips).mean(axis=0)


class SFaceModel:
    """OpenCV Zoo's pipeline: YuNet detection and 5 points, ArcFace's 112 px chip, SFace (ONNX)."""

    name = "sface"

    def __init__(self, tta: str = SFACE_TTA, threads=None, detector: YuNetDetector | None = None) -> None:
        if tta not in SFACE_VIEWS:
            raise ValueError(f"SFace's tta must be one of {sorted(SFACE_VIEWS)}, not {tta!r}")
        self.tta = tta
        self.detector = detector or YuNetDetector()
        self.embedder = SFaceEmbedder(threads=threads)

    @property
    def sha256(self) -> str:
        return SFACE.sha256

    def locate(
        self, pixels: np.ndarray, no_face: str, tta: str | None = None, faces: list[Face] | None = None
    ) -> LocatedFace:
        """`faces`: YuNet's faces on these very pixels when the caller has them already (the upright step)."""
        faces = self.detector.detect(pixels) if faces is None else faces
        if faces:
            face = primary_face(faces, pixels.shape)
        elif no_face == "centre-box":
            box = _centre_box(pixels)
            face = Face(box, arcface_points_in_box(box), 0.0, "centre-box")
        else:
            raise NoFaceError("no face found in the image")
        chip = align_arcface(pixels, face.landmarks)
        views = SFACE_VIEWS[tta or self.tta]
        chips = np.stack([chip, chip[:, ::-1]][:views])
        return LocatedFace(pixels, faces, face, np.ascontiguousarray(chips), "sface")

    def embed(self, located: LocatedFace) -> np.ndarray:
        return unit(self.embedder.embed_chips(located.chips).mean(axis=0))


class FaceEncoder:
    """Client-side face pipeline: photo in, one embedding out, with its faces, chips and per-stage timings.

    `encoder`: "fused" (default), "sface" or "dlib". `tta`: dlib's views ("jitter": 18 views, the chip and 8
    small shifts/zooms/rotations each with its mirror; "flip"; "none"); SFace always averages the chip and
    its mirror. `model_path` replaces dlib's ONNX file.
    """

    def __init__(
        self,
        model_path: str | Path | None = None,
        tta: str = "jitter",
        cnn_fallback: bool = True,
        threads: int | None = None,
        encoder: str = DEFAULT_ENCODER,
    ) -> None:
        if encoder not in ENCODERS:
            raise ValueError(f"encoder must be one of {list(ENCODERS)}, not {encoder!r}")
        if tta not in TTA_VIEWS:
            raise ValueError(f"tta must be one of {sorted(TTA_VIEWS)}, not {tta!r}")
        self.encoder = encoder
        self.tta = {"dlib": tta, "sface": SFACE_TTA, "fused": FUSED_DLIB_TTA}[encoder]
        self.orientation = YuNetDetector()
        self.models: list[DlibModel | SFaceModel] = []
        if encoder in ("sface", "fused"):
            self.models.append(SFaceModel(threads=threads, detector=self.orientation))
        if encoder in ("dlib", "fused"):
            dlib_tta = FUSED_DLIB_TTA if encoder == "fused" else tta
            self.models.append(DlibModel(model_path, dlib_tta, cnn_fallback, threads))

    @cached_property
    def threshold(self) -> float:
        """The clear distance threshold calibrated on LFW (read on first use: embedding needs none)."""
        if self.encoder == "dlib":
            return load_threshold(self.tta, DLIB_THRESHOLD)
        return load_threshold(self.encoder, SFACE_THRESHOLD)

    @property
    def dims(self) -> int:
        return 256 if self.encoder == "fused" else 128

    @cached_property
    def model_sha256(self) -> str:
        """Identifies the exact model files and their combination: caches and encrypted templates are tied to it."""
        dlib_model = next((m for m in self.models if isinstance(m, DlibModel)), None)
        return self.sha256_of(self.encoder, dlib_model.sha256 if dlib_model else None)

    @staticmethod
    def sha256_of(encoder: str, dlib_sha256: str | None = None) -> str:
        """`model_sha256` of an encoder with the shipped files (or dlib's ONNX file of that sha256)."""
        if encoder in ("dlib", "fused") and dlib_sha256 is None:
            dlib_sha256 = file_sha256(ensure_encoder_model())
        if encoder == "dlib":
            return dlib_sha256
        files = [YUNET.sha256, SFACE.sha256] + ([dlib_sha256] if encoder == "fused" else [])
        weight = f"{FUSED_DLIB_WEIGHT}:" if encoder == "fused" else ""
        return hashlib.sha256(f"{encoder}:{weight}{','.join(files)}".encode()).hexdigest()

    @property
    def embedder(self):
        """The first model's ONNX embedder (dlib's for `dlib`)."""
        return self.models[0].embedder

    @property
    def detector(self):
        return self.models[0].detector

    def upright(self, pixels: np.ndarray) -> tuple[np.ndarray, int, list[Face] | None]:
        """The photo turned by quarter turns so that its face is upright (phone photos without an
        orientation tag), the turns, and YuNet's faces on the result when it is the photo as it was;
        never a verdict on a sideways chip."""
        turns, faces = self.orientation.orient(pixels)
        return (np.ascontiguousarray(np.rot90(pixels, turns)), turns, None) if turns else (pixels, 0, faces)

    def detect(self, image: ImageInput) -> list[Face]:
        """Every face in the upright image, largest first (the first model's detector)."""
        pixels, _, _ = self.upright(load_image(image))
        return self.models[0].detector.detect(pixels)

    def locate_all(self, image: ImageInput, no_face: str = "error", tta: str | None = None) -> list[LocatedFace]:
        """Decode, turn upright, then each model's locate step; `fused` checks both chose the same face."""
        if no_face not in NO_FACE_POLICIES:
            raise ValueError(f"no_face must be one of {NO_FACE_POLICIES}, not {no_face!r}")
        t0 = time.perf_counter()
        pixels = image.pixels if isinstance(image, LocatedFace) else load_image(image)
        t1 = time.perf_counter()
        # LFW's evaluation photos (the centre-box policy) are upright by construction: not turned.
        pixels, turns, yunet_faces = self.upright(pixels) if no_face == "error" else (pixels, 0, None)
        t2 = time.perf_counter()
        located = []
        for model in self.models:
            start = time.perf_counter()
            try:
                if isinstance(model, SFaceModel):
                    found = model.locate(pixels, no_face, faces=yunet_faces)
                else:
                    found = model.locate(pixels, no_face, tta)
            except NoFaceError as err:
                if len(self.models) > 1 and located:
                    raise NoFaceError(
                        f"{located[0].model} found a face but {model.name} did not: the fused encoder needs both "
                        "(try --encoder sface)"
                    ) from err
                raise
            found.turns = turns
            found.timings_ms = {"detect+align": 1e3 * (time.perf_counter() - start)}
            located.append(found)
        if len(located) == 2 and located[0].faces and located[1].faces and not _same_face(*(f.face for f in located)):
            raise NoFaceError(
                f"the two models chose different faces (boxes {list(located[0].face.box)} and "
                f"{list(located[1].face.box)}): crop the photo to one face"
            )
        located[0].timings_ms = {"load": 1e3 * (t1 - t0), "upright": 1e3 * (t2 - t1), **located[0].timings_ms}
        return located

    def locate(self, image: ImageInput, no_face: str = "error", tta: str | None = None) -> LocatedFace:
        """The first model's locate step (see `locate_all`)."""
        return self.locate_all(image, no_face, tta)[0]

    def align(self, image: ImageInput) -> np.ndarray:
        """The aligned chip of the primary face, as the first model sees it."""
        return self.locate(image).chip

    def vector(self, vectors: dict[str, np.ndarray]) -> np.ndarray:
        """The encoder's embedding from its models' vectors."""
        if self.encoder == "fused":
            return fuse(vectors["dlib"], vectors["sface"])
        return vectors[self.encoder]

    def encode(self, image: ImageInput | LocatedFace) -> FaceEncoding:
        """Embedding plus the faces found, the one used, its chips and per-stage timings."""
        located = self.locate_all(image)
        timings = dict(located[0].timings_ms)
        vectors = {}
        for model, found in zip(self.models, located, strict=True):
            start = time.perf_counter()
            vectors[model.name] = model.embed(found)
            timings[f"embed-{model.name}"] = 1e3 * (time.perf_counter() - start)
            if found is not located[0]:
                timings[f"detect+align-{model.name}"] = found.timings_ms["detect+align"]
        embedding = self.vector(vectors).astype(np.float32)
        parts = {found.model: found for found in located}
        return FaceEncoding(embedding, located[0], self.tta, self.encoder, parts, timings)

    def embed(self, image: ImageInput) -> np.ndarray:
        """The embedding of the primary face (raises NoFaceError if there is none)."""
        encoding = self.encode(image)
        if encoding.note:
            log.warning(encoding.note)
        return encoding.embedding

    def embed_many(self, images: Iterable[ImageInput]) -> np.ndarray:
        """Embeddings (n, dims) of many photos."""
        vectors = [self.encode(image).embedding for image in images]
        return np.stack(vectors) if vectors else np.zeros((0, self.dims), np.float32)

    def template(self, embeddings: list[np.ndarray], labels: list[str] | None = None) -> np.ndarray:
        """One enrolment template from 1..MAX_ENROL_PHOTOS embeddings of one person (`template_of`). Photos of
        different people are refused, naming the odd one: each photo against the mean of the others, at
        this encoder's same-person threshold."""
        labels = labels or [f"photo {i + 1}" for i in range(len(embeddings))]
        if not 1 <= len(embeddings) <= MAX_ENROL_PHOTOS:
            raise EnrolmentError(f"an enrolment takes 1 to {MAX_ENROL_PHOTOS} photos, not {len(embeddings)}")
        vectors = np.asarray(embeddings, np.float64)
        if len(vectors) == 2 and distance(*vectors) >= self.threshold:
            raise EnrolmentError(f"{labels[0]} and {labels[1]} do not look like the same person: enrol one person")
        if len(vectors) > 2:
            apart = [
                distance(v, template_of(np.delete(vectors, i, axis=0), self.encoder)) for i, v in enumerate(vectors)
            ]
            odd = int(np.argmax(apart))
            if apart[odd] >= self.threshold:
                raise EnrolmentError(
                    f"{labels[odd]} does not look like the same person as the other photos "
                    f"(distance {apart[odd]:.2f}, same-person threshold {self.threshold:.2f}): enrol one person"
                )
        return template_of(vectors, self.encoder).astype(np.float32)

    def compare(self, a: ImageInput, b: ImageInput) -> tuple[float, bool]:
        """(distance, same_person) in clear, with this encoder's threshold."""
        d = distance(self.embed(a), self.embed(b))
        return d, d < self.threshold
