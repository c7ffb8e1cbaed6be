"""The ONNX embedding model: aligned 150x150 chips in, 128-d descriptors out (no dlib needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from client_encoder.models import ensure_encoder_model, file_sha256


class FaceEmbedder:
    """One ONNX Runtime session of the converted dlib ResNet."""

    def __init__(self, model_path: str | Path | None = None, threads: int | None = None) -> None:
        self.model_path = ensure_encoder_model(model_path)
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(self.model_path), options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.metadata = dict(self.session.get_modelmeta().custom_metadata_map)

    @property
    def sha256(self) -> str:
        """Identifies the exact model: caches and encrypted templates are tied to it."""
        return file_sha256(self.model_path)

    def embed_chips(self, chips: np.ndarray, batch_size: int = 32) -> np.ndarray:
        """Descriptors (n, 128) float32 for chips (n, 150, 150, 3) RGB 0..255."""
        chips = np.asarray(chips)
        if chips.ndim != 4 or chips.shape[1:] != (150, 150, 3):
            raise ValueError(f"expected chips of shape (n, 150, 150, 3), got {chips.shape}")
        out = [
            self.session.run(None, {self.input_name: chips[i : i + batch_size].astype(np.float32)})[0]
            for i in range(0, len(chips), batch_size)
        ]
        return np.concatenate(out) if out else np.zeros((0, 128), np.float32)
