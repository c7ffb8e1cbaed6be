import io
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from client_encoder import FaceEncoder, InvalidImageError, NoFaceError, distance
from tests.conftest import ASTRONAUT, CAT


@pytest.fixture(scope="module")
def encoder(dlib_encoder):
    """This module tests dlib's pipeline: `encoder` is dlib's here."""
    return dlib_encoder


def test_detect_returns_box_landmarks_and_score(encoder):
    faces = encoder.detect(ASTRONAUT)
    best = faces[0]
    left, top, right, bottom = best.box
    assert 150 < (left + right) / 2 < 300 and 60 < (top + bottom) / 2 < 200  # her face, upper middle
    assert best.landmarks.shape == (5, 2)
    assert all(left - 10 <= x <= right + 10 and top - 10 <= y <= bottom + 10 for x, y in best.landmarks)
    assert best.score > 0.5 and best.detector == "hog"


def test_align_gives_a_150px_chip(encoder):
    chip = encoder.align(ASTRONAUT)
    assert chip.shape == (150, 150, 3) and chip.dtype == np.uint8


def test_embedding_is_128d_and_stable_under_mirroring(encoder):
    embedding = encoder.embed(ASTRONAUT)
    assert embedding.shape == (128,) and embedding.dtype == np.float32
    assert 1.0 < np.linalg.norm(embedding) < 2.0  # dlib descriptors are not normalised
    mirrored = np.asarray(Image.open(ASTRONAUT))[:, ::-1]
    assert distance(embedding, encoder.embed(mirrored)) < 0.1  # flip-TTA is mirror-symmetric


def test_tta_modes_differ_but_agree(encoder):
    plain = FaceEncoder(tta="none", encoder="dlib").embed(ASTRONAUT)
    jitter = FaceEncoder(tta="jitter", encoder="dlib").embed(ASTRONAUT)
    flip = encoder.embed(ASTRONAUT)
    assert 0 < distance(plain, flip) < 0.15 and 0 < distance(flip, jitter) < 0.15
    with pytest.raises(ValueError, match="tta"):
        FaceEncoder(tta="sometimes")


def test_exif_rotated_photo_embeds_like_the_upright_one(encoder):
    upright = Image.open(ASTRONAUT)
    exif = Image.Exif()
    exif[0x0112] = 8  # stored rotated by 90 degrees; viewers turn it back
    buffer = io.BytesIO()
    upright.rotate(-90, expand=True).save(buffer, format="JPEG", quality=95, exif=exif.tobytes())
    assert distance(encoder.embed(buffer.getvalue()), encoder.embed(upright)) < 0.1


def test_no_face(encoder):
    with pytest.raises(NoFaceError, match="no face"):
        encoder.embed(CAT)
    with pytest.raises(NoFaceError):
        encoder.embed(np.full((300, 300, 3), 128, np.uint8))


def test_several_faces_picks_the_large_central_one_and_says_so(encoder):
    photo = Image.open(ASTRONAUT)
    canvas = Image.new("RGB", (1500, 1100), (200, 200, 200))
    canvas.paste(photo.resize((800, 800)), (350, 150))  # large, central
    canvas.paste(photo, (980, 580))  # smaller, in a corner
    encoding = encoder.encode(np.asarray(canvas))
    assert len(encoding.faces) == 2
    left, top, right, bottom = encoding.face.box
    assert left > 350 and right < 1150 and top > 150 and bottom < 950
    assert "faces found" in encoding.note
    assert distance(encoding.embedding, encoder.embed(photo)) < 0.1


def test_large_photo_is_detected_on_a_reduced_copy(encoder):
    big = Image.open(ASTRONAUT).resize((4096, 4096), Image.BILINEAR)
    assert distance(encoder.embed(big), encoder.embed(ASTRONAUT)) < 0.15


def test_cnn_fallback_runs_on_a_copy_of_at_most_800px():
    # The CNN's cost grows with the pixels: a blank 1600x1600 photo took 26 s and 2.6 GB at full size.
    from types import SimpleNamespace

    import dlib

    from client_encoder.detect import FaceDetector

    detector = FaceDetector()
    seen = []

    def cnn(image, upsample):
        seen.append((image.shape, upsample))
        return [SimpleNamespace(rect=dlib.rectangle(100, 150, 300, 350), confidence=1.0)]

    detector.__dict__["_cnn"] = cnn  # in place of the cached model
    [face] = detector.detect(np.full((1600, 1200, 3), 128, np.uint8))
    assert seen == [((800, 600, 3), 0)]
    assert face.box == (200, 300, 600, 700) and face.detector == "cnn"  # in the photo's own pixels


def test_cnn_finds_a_rotated_face_in_a_large_photo_where_it_is(encoder):
    rotated = Image.open(ASTRONAUT).rotate(60, Image.Resampling.BICUBIC, fillcolor=(128, 128, 128))
    # dlib's detector itself (FaceEncoder.detect would first turn the photo upright, and HOG find it).
    [small] = encoder.detector.detect(np.asarray(rotated))
    [large] = encoder.detector.detect(np.asarray(rotated.resize((1200, 1200), Image.Resampling.BICUBIC)))
    assert small.detector == large.detector == "cnn"
    expected = np.array(small.centre) * 1200 / 512
    assert np.abs(np.array(large.centre) - expected).max() < 30


def test_bad_input_is_a_clear_error(encoder):
    with pytest.raises(InvalidImageError):
        encoder.embed(b"GIF89a but not really")


def test_embed_many_matches_embed(encoder):
    mirrored = np.asarray(Image.open(ASTRONAUT))[:, ::-1]
    batch = encoder.embed_many([ASTRONAUT, mirrored])
    assert batch.shape == (2, 128)
    np.testing.assert_allclose(batch[0], encoder.embed(ASTRONAUT), atol=1e-5)


def test_compare_same_photo(encoder):
    d, same = encoder.compare(ASTRONAUT, ASTRONAUT)
    assert d == pytest.approx(0.0, abs=1e-6) and same


def test_one_detector_serves_several_threads():
    # dlib's HOG scan corrupts the heap when two threads share one detector (the app's sessions and a
    # client's workers do): a subprocess, so a regression fails this test instead of killing the run.
    code = """
import threading
from client_encoder.detect import FaceDetector
from client_encoder.images import load_image
from tests.conftest import ASTRONAUT
photo = load_image(ASTRONAUT)
images = [photo, photo[:, ::-1].copy(), photo[::2, ::2].copy()]
detector = FaceDetector()
expected = [[f.box for f in detector.detect(i)] for i in images]
wrong = []
def work(k):
    for j in range(30):
        i = (j + k) % 3
        if [f.box for f in detector.detect(images[i])] != expected[i]:
            wrong.append(i)
threads = [threading.Thread(target=work, args=(k,)) for k in range(3)]
[t.start() for t in threads]
[t.join() for t in threads]
assert not wrong, wrong
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
