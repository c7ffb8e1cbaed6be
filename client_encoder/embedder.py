"""The ONNX embedding model: aligned 150x150 chips in, 128-d descriptors out (no dlib needed)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import onnxruntime as ort

from client_encoder.models import ensure_encoder_model, file_sha256
from privface_core.errors import ArtifactError

CHIP_SHAPE = (150, 150, 3)
DESCRIPTOR_SIZE = 128


# What ONNX Runtime puts around its reason: a status prefix, "Load model from PATH failed:" (the
# path is named already) and a C++ source location with a function signature.
_ORT_NOISE = (
    re.compile(r"^\[ONNXRuntimeError\] : \d+ : \w+ : "),
    re.compile(r"^Load model from .* failed:"),
    re.compile(r"^\S+\.(?:cc|cpp|h):\d+ .*\) "),
)


def _first_line(err: Exception) -> str:
    """ONNX Runtime's reason, without the noise: one short line for the user."""
    lines = str(err).strip().splitlines()
    text = lines[0] if lines else ""
    for noise in _ORT_NOISE:
        text = noise.sub("", text)
    return text.strip() or type(err).__name__


class FaceEmbedder:
    """One ONNX Runtime session of the converted dlib ResNet."""

    def __init__(self, model_path: str | Path | None = None, threads: int | None = None) -> None:
        self.model_path = ensure_encoder_model(model_path)
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(self.model_path), options, providers=["CPUExecutionProvider"])
        except Exception as err:  # ONNX Runtime's errors share no base class narrower than Exception
            raise self._not_an_encoder(f"ONNX Runtime cannot load it: {_first_line(err)}") from err
        self.input_name = self.session.get_inputs()[0].name
        self.metadata = dict(self.session.get_modelmeta().custom_metadata_map)
        self._check_output()

    def _not_an_encoder(self, reason: str) -> ArtifactError:
        return ArtifactError(f"{self.model_path} is not a face encoder ({reason})")

    def _check_output(self) -> None:
        """Run once on a blank chip: any other model would give descriptors that the thresholds, the
        FHE heads and the caches do not fit, and fail late (or silently print a verdict)."""
        try:
            out = self._run(np.zeros((1, *CHIP_SHAPE), np.float32))
        except Exception as err:  # as above: wrong input rank, type or names all end here
            raise self._not_an_encoder(f"it does not take chips [batch, 150, 150, 3]: {_first_line(err)}") from err
        if out.shape != (1, DESCRIPTOR_SIZE) or not np.issubdtype(out.dtype, np.floating):
            raise self._not_an_encoder(f"its output is {out.dtype} {list(out.shape)}, not float [batch, 128]")
        if not np.all(np.isfinite(out)):
            raise self._not_an_encoder("its output on a blank chip is not finite")

    def _run(self, batch: np.ndarray) -> np.ndarray:
        return np.asarray(self.session.run(None, {self.input_name: batch})[0])

    @property
    def sha256(self) -> str:
        """Identifies the exact model: caches and encrypted templates are tied to it."""
        return file_sha256(self.model_path)

    def embed_chips(self, chips: np.ndarray, batch_size: int = 32) -> np.ndarray:
        """Descriptors (n, 128) float32 for chips (n, 150, 150, 3) RGB 0..255."""
        chips = np.asarray(chips)
        if chips.ndim != 4 or chips.shape[1:] != CHIP_SHAPE:
            raise ValueError(f"expected chips of shape (n, 150, 150, 3), got {chips.shape}")
        out = [self._run(chips[i : i + batch_size].astype(np.float32)) for i in range(0, len(chips), batch_size)]
        return np.concatenate(out) if out else np.zeros((0, DESCRIPTOR_SIZE), np.float32)
