from __future__ import annotations

import atexit
import os
import sys
from pathlib import Path

import pytest

from privface.resources import EXAMPLES_DIR as DATA  # photos ship with the app (privface/examples)

ASTRONAUT = DATA / "astronaut.jpg"  # Eileen Collins, NASA, public domain (via scikit-image)
CAMERAMAN = DATA / "cameraman.jpg"  # the classic test photo, CC0 (via scikit-image)
CAT = DATA / "chelsea_cat.jpg"  # Chelsea the cat, CC0 (via scikit-image): no human face


@pytest.fixture(scope="session")
def encoder():
    """The encoder the shipped heads were trained on (a client refuses any other)."""
    from client_encoder import FaceEncoder
    from fhe_head.artifacts import head_encoder

    return FaceEncoder(tta="flip", encoder=head_encoder("fast"))


@pytest.fixture(scope="session")
def dlib_encoder():
    """dlib's pipeline alone (chip + mirror): the tests of dlib's detector, chip, ONNX model and views."""
    from client_encoder import FaceEncoder

    return FaceEncoder(tta="flip", encoder="dlib")


@pytest.fixture(scope="session")
def lfw_dir() -> Path:
    """The LFW copy named by $LFW_DIR (CI points it at the original release)."""
    value = os.environ.get("LFW_DIR")
    if not value:
        pytest.skip("LFW not available: set LFW_DIR to an LFW folder (pairs.txt + <Name>/<Name>_NNNN.jpg)")
    if not (Path(value) / "pairs.txt").is_file():
        pytest.skip(f"LFW_DIR={value} holds no pairs.txt")
    return Path(value)


@pytest.fixture(scope="session")
def fold0(lfw_dir, tmp_path_factory):
    """LFW View 2 fold 0 (600 pairs) embedded from raw photos with the default pipeline (jitter TTA)."""
    from client_encoder import FaceEncoder
    from training.embeddings import embed_images
    from training.lfw import LFW, unique_images

    pairs = [p for p in LFW(lfw_dir).view2() if p.fold == 0]
    encoder = FaceEncoder(encoder="dlib")
    cache = tmp_path_factory.mktemp("embeddings") / "cache.sqlite"
    emb = embed_images(unique_images(pairs), encoder, cache_path=cache, tta=encoder.tta, progress=False)
    return pairs, emb


@pytest.fixture(scope="session")
def fold0_shipped(lfw_dir, tmp_path_factory):
    """LFW View 2 fold 0 embedded with the encoder the shipped heads were trained on: (pairs, ImageVectors)."""
    from fhe_head.artifacts import head_encoder
    from training.embeddings import encoder_vectors
    from training.lfw import LFW, unique_images

    pairs = [p for p in LFW(lfw_dir).view2() if p.fold == 0]
    cache = tmp_path_factory.mktemp("embeddings") / "cache.sqlite"
    vectors = encoder_vectors(unique_images(pairs), head_encoder("accurate"), cache_path=cache, progress=False)
    return pairs, vectors


# concrete registers an exit handler that stops its dataflow runtime and ends the process with status 0
# once a server circuit has run in it, whatever Python was exiting with: a failing session would look
# green. Run the other exit handlers, then leave with pytest's own status.
_session_status = 0


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    global _session_status
    _session_status = int(exitstatus)


def pytest_unconfigure(config: pytest.Config) -> None:
    if not _session_status:
        return
    compiler = sys.modules.get("concrete.compiler")
    if compiler is not None:
        atexit.unregister(compiler._terminate_df_parallelization)
    sys.stdout.flush()
    sys.stderr.flush()
    atexit._run_exitfuncs()
    os._exit(_session_status)
