"""Client-side face encoder: photo -> detect -> align -> ONNX embedding, all on the user's device."""

from client_encoder.detect import Face
from client_encoder.encoder import FaceEncoder, FaceEncoding, LocatedFace, distance
from client_encoder.images import load_image
from privface_core.errors import InvalidImageError, NoFaceError

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
