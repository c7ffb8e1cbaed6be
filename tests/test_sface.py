"""The SFace encoder (YuNet + ArcFace chip + SFace in ONNX Runtime) against OpenCV's own reference pipeline,
the three encoders' shapes, orientation, and the model files' integrity checks."""

from __future__ import annotations

import shutil

import cv2
import numpy as np
import pytest

from client_encoder import encoder as encoder_module
from client_encoder.encoder import FaceEncoder, distance, fuse
from client_encoder.images import load_image
from client_encoder.models import SFACE, YUNET, verified_model
from client_encoder.sface import ARCFACE_TEMPLATE, YuNetDetector, align_arcface, similarity_transform
from privface.resources import EXAMPLES_DIR
from privface_core.errors import ArtifactError, NoFaceError

PHOTOS = ["astronaut.jpg", "obama.jpg", "biden.jpg", "cameraman.jpg"]


@pytest.fixture(scope="module")
def opencv_recognizer() -> cv2.FaceRecognizerSF:
    return cv2.FaceRecognizerSF.create(str(verified_model(SFACE)), "")


@pytest.fixture(scope="module")
def detector() -> YuNetDetector:
    return YuNetDetector()


def _opencv_face_row(face) -> np.ndarray:
    left, top, right, bottom = face.box
    return np.array([left, top, right - left, bottom - top, *face.landmarks.ravel(), face.score], np.float32)


@pytest.mark.parametrize("name", PHOTOS)
def test_alignment_matches_opencv_align_crop(name: str, detector, opencv_recognizer) -> None:
    pixels = load_image(EXAMPLES_DIR / name)
    face = detector.detect(pixels)[0]
    # An image whose pixels hold their own coordinates: OpenCV's crop of it reads out its transform, to
    # warpAffine's 1/32-pixel sampling grid; a least-squares fit over the 112x112 samples recovers it.
    height, width = pixels.shape[:2]
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    sampled = opencv_recognizer.alignCrop(np.dstack([xs, ys, np.zeros_like(xs)]), _opencv_face_row(face))[..., :2]
    grid = np.stack(np.meshgrid(np.arange(112), np.arange(112)), axis=-1).reshape(-1, 2).astype(np.float64)
    design = np.hstack([grid, np.ones((len(grid), 1))])
    inside = np.all((sampled.reshape(-1, 2) > 1) & (sampled.reshape(-1, 2) < [width - 2, height - 2]), axis=1)
    theirs_inverse = np.linalg.lstsq(design[inside], sampled.reshape(-1, 2)[inside].astype(np.float64), rcond=None)[0]
    ours_inverse = cv2.invertAffineTransform(similarity_transform(face.landmarks))
    # In chip pixels mapped to photo pixels: the two transforms agree to a millionth of the photo's size.
    difference = np.abs(theirs_inverse.T - ours_inverse).max()
    assert difference < 1e-6 * max(width, height), difference
    # And the pixels themselves (OpenCV's crop takes BGR; ours RGB): equal but where a 1/32-pixel sample
    # position rounds the other way.
    bgr = np.ascontiguousarray(pixels[:, :, ::-1])
    theirs = opencv_recognizer.alignCrop(bgr, _opencv_face_row(face))[:, :, ::-1]
    off = np.abs(theirs.astype(int) - align_arcface(pixels, face.landmarks).astype(int))
    assert np.mean(off > 1) < 1e-3 and np.mean(off) < 0.05, (np.mean(off > 1), np.mean(off))


def test_similarity_transform_of_the_template_is_the_identity() -> None:
    matrix = similarity_transform(ARCFACE_TEMPLATE)
    np.testing.assert_allclose(matrix, [[1, 0, 0], [0, 1, 0]], atol=1e-9)
    turned = ARCFACE_TEMPLATE @ np.array([[0, -2], [2, 0]]).T + [10, 20]  # a turn, a zoom, a shift
    back = turned @ similarity_transform(turned)[:, :2].T + similarity_transform(turned)[:, 2]
    np.testing.assert_allclose(back, ARCFACE_TEMPLATE, atol=1e-9)


@pytest.mark.parametrize("name", PHOTOS[:2])
def test_sface_embedding_matches_opencv_feature(name: str, detector, opencv_recognizer) -> None:
    pixels = load_image(EXAMPLES_DIR / name)
    chip = align_arcface(pixels, detector.detect(pixels)[0].landmarks)
    reference = opencv_recognizer.feature(np.ascontiguousarray(chip[:, :, ::-1])).ravel()
    reference /= np.linalg.norm(reference)
    ours = encoder_module.SFaceEmbedder().embed_chips(chip[None])[0]
    assert float(ours @ reference) > 0.99999


@pytest.fixture(scope="module")
def encoders() -> dict[str, FaceEncoder]:
    return {name: FaceEncoder(encoder=name, tta="flip") for name in ("sface", "fused")}


def test_encoder_shapes_and_the_same_person(encoders) -> None:
    obama, obama2, biden = (EXAMPLES_DIR / f for f in ("obama.jpg", "obama2.jpg", "biden.jpg"))
    for name, dims in (("sface", 128), ("fused", 256)):
        encoder = encoders[name]
        a, b, c = (encoder.embed(p) for p in (obama, obama2, biden))
        assert a.shape == (dims,) and abs(np.linalg.norm(a) - 1) < 1e-5
        assert distance(a, b) < encoder.threshold < distance(a, c), name
    fused = fuse(np.ones(128), np.ones(128), 0.6)
    assert abs(np.linalg.norm(fused) - 1) < 1e-9 and abs(np.linalg.norm(fused[:128]) - 0.6) < 1e-9


@pytest.mark.parametrize("turns", [1, 2, 3])
def test_a_turned_photo_is_turned_upright(turns: int, encoders) -> None:
    encoder = encoders["sface"]
    pixels = load_image(EXAMPLES_DIR / "obama.jpg")
    upright = encoder.encode(pixels)
    turned = encoder.encode(np.ascontiguousarray(np.rot90(pixels, turns)))
    assert turned.located.turns == (4 - turns) % 4 and "turned" in turned.note
    assert distance(upright.embedding, turned.embedding) < 0.3 * encoder.threshold


def test_fused_needs_both_models_to_find_the_face(encoders, monkeypatch) -> None:
    def no_face(*_args, **_kwargs):
        raise NoFaceError("no face found in the image")

    monkeypatch.setattr(encoder_module.DlibModel, "locate", no_face)
    with pytest.raises(NoFaceError, match="sface found a face but dlib did not"):
        encoders["fused"].encode(EXAMPLES_DIR / "obama.jpg")


def test_altered_or_missing_model_files_are_named(tmp_path, monkeypatch) -> None:
    shipped = verified_model(YUNET).parent
    copy = tmp_path / "encoder"
    shutil.copytree(shipped, copy)
    monkeypatch.setenv("PRIVFACE_ARTIFACTS", str(tmp_path))
    altered = copy / SFACE.filename
    altered.write_bytes(altered.read_bytes()[:-1] + b"\0")
    with pytest.raises(ArtifactError, match=f"{SFACE.filename}: sha256 .* is not"):
        verified_model(SFACE)
    (copy / YUNET.filename).unlink()
    with pytest.raises(ArtifactError, match=f"{YUNET.filename}: model file missing"):
        verified_model(YUNET)
    with pytest.raises(ArtifactError, match=YUNET.filename):
        FaceEncoder(encoder="sface")


def test_an_enrolment_template_from_several_photos(encoders) -> None:
    from client_encoder.encoder import MAX_ENROL_PHOTOS
    from privface_core.errors import EnrolmentError

    encoder = encoders["fused"]
    obama = [encoder.embed(EXAMPLES_DIR / f) for f in ("obama.jpg", "obama2.jpg", "obama3.jpg")]
    biden = encoder.embed(EXAMPLES_DIR / "biden.jpg")
    template = encoder.template(obama)
    assert template.shape == (256,) and abs(np.linalg.norm(template) - 1) < 1e-5
    assert all(distance(template, e) < min(distance(e, o) for o in obama if o is not e) for e in obama)
    with pytest.raises(EnrolmentError, match="^biden.jpg does not look like the same person as the other photos"):
        encoder.template([obama[0], biden, obama[1]], ["obama.jpg", "biden.jpg", "obama2.jpg"])
    with pytest.raises(EnrolmentError, match="^photo 1 and photo 2 do not look like the same person"):
        encoder.template([obama[0], biden])
    with pytest.raises(EnrolmentError, match=f"1 to {MAX_ENROL_PHOTOS} photos, not {MAX_ENROL_PHOTOS + 1}"):
        encoder.template([obama[0]] * (MAX_ENROL_PHOTOS + 1))
