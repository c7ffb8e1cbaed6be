"""Client-side face encoder: photo -> detect -> align -> ONNX embedding, all on the user's device."""

from client_encoder.detect import Face
from client_encoder.encoder import FaceEncoder, FaceEncoding, NoFaceError, distance
from client_encoder.images import InvalidImageError, load_image

__all__ = ["Face", "FaceEncoder", "FaceEncoding", "InvalidImageError", "NoFaceError", "distance", "load_image"]
