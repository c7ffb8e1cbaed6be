"""Client-side face encoder: photo -> detect -> align -> ONNX embedding, all on the user's device."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from privface_core.errors import InvalidImageError, NoFaceError

if TYPE_CHECKING:
    from client_encoder.detect import Face
    from client_encoder.encoder import FaceEncoder, FaceEncoding, LocatedFace, distance
    from client_encoder.images import load_image

# Loaded on first use: `python -m client_encoder` imports this package before its own Ctrl-C guard, so the
# package itself must load nothing slow (OpenCV, ONNX Runtime).
_LAZY = {
    "Face": "client_encoder.detect",
    "FaceEncoder": "client_encoder.encoder",
    "FaceEncoding": "client_encoder.encoder",
    "LocatedFace": "client_encoder.encoder",
    "distance": "client_encoder.encoder",
    "load_image": "client_encoder.images",
}

__all__ = [
    "Face",
    "FaceEncoder",
    "FaceEncoding",
    "InvalidImageError",
    "LocatedFace",
    "NoFaceError",
    "distance",
    "load_image",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'client_encoder' has no attribute {name!r}")
