"""The ONNX model must compute dlib's descriptors: compared with dlib itself on the same chips."""

import dlib
import numpy as np
import onnx
import pytest

from client_encoder.align import TTA_VIEWS, align
from client_encoder.embedder import FaceEmbedder
from client_encoder.export import export
from client_encoder.images import load_image
from client_encoder.models import default_encoder_path, dlib_resnet_source_path
from tests.conftest import ASTRONAUT


@pytest.fixture(scope="module")
def encoder(dlib_encoder):
    """This module tests dlib's pipeline: `encoder` is dlib's here."""
    return dlib_encoder


@pytest.fixture(scope="module")
def dlib_resnet():
    return dlib.face_recognition_model_v1(str(dlib_resnet_source_path()))


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    return export(dlib_resnet_source_path(), tmp_path_factory.mktemp("onnx") / "resnet.onnx")


def _chips(encoder, image) -> np.ndarray:
    pixels = load_image(image)
    face = encoder.detector.detect(pixels)[0]
    return align(pixels, face, TTA_VIEWS["jitter"])


def _max_abs_diff(embedder: FaceEmbedder, dlib_resnet, chips: np.ndarray) -> float:
    ours = embedder.embed_chips(chips)
    theirs = np.array([dlib_resnet.compute_face_descriptor(np.ascontiguousarray(c)) for c in chips])
    return float(np.abs(ours - theirs).max())


def test_onnx_matches_dlib_on_face_chips(exported, dlib_resnet, encoder):
    chips = _chips(encoder, ASTRONAUT)
    diff = _max_abs_diff(FaceEmbedder(exported), dlib_resnet, chips)
    assert diff <= 1e-4, f"max abs difference to dlib {diff:.2e}"


def test_onnx_matches_dlib_on_arbitrary_inputs(exported, dlib_resnet):
    # Not faces: exercises every channel and the zero-padded residual adds with extreme values.
    rng = np.random.default_rng(0)
    chips = rng.integers(0, 256, size=(4, 150, 150, 3), dtype=np.uint8)
    chips[0] = 0
    chips[1] = 255
    assert _max_abs_diff(FaceEmbedder(exported), dlib_resnet, chips) <= 1e-4


def test_onnx_matches_dlib_on_lfw_photos(exported, dlib_resnet, encoder, lfw_dir):
    from training.lfw import LFW, unique_images

    paths = unique_images(LFW(lfw_dir).view2())[:: 7701 // 12][:12]
    chips = np.concatenate([_chips(encoder, p)[:2] for p in paths])
    assert _max_abs_diff(FaceEmbedder(exported), dlib_resnet, chips) <= 1e-4


def test_shipped_model_is_the_current_conversion(exported):
    shipped = default_encoder_path()
    assert shipped.is_file(), "run: python -m client_encoder.export"
    assert shipped.read_bytes() == exported.read_bytes(), "artifacts/encoder is stale: re-run client_encoder.export"


def test_model_metadata_documents_input_and_output(exported):
    meta = {p.key: p.value for p in onnx.load(exported).metadata_props}
    assert "0..255" in meta["input"] and "NOT L2-normalised" in meta["output"]
    assert meta["license"].startswith("CC0")
    assert len(meta["source_sha256"]) == 64
