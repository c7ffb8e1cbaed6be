from __future__ import annotations

import os
from pathlib import Path

import pytest

from privface.resources import EXAMPLES_DIR as DATA  # photos ship with the app (privface/examples)

ASTRONAUT = DATA / "astronaut.jpg"  # Eileen Collins, NASA, public domain (via scikit-image)
CAMERAMAN = DATA / "cameraman.jpg"  # the classic test photo, CC0 (via scikit-image)
CAT = DATA / "chelsea_cat.jpg"  # Chelsea the cat, CC0 (via scikit-image): no human face


@pytest.fixture(scope="session")
def encoder():
    from client_encoder import FaceEncoder

    return FaceEncoder(tta="flip")


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
    encoder = FaceEncoder()
    cache = tmp_path_factory.mktemp("embeddings") / "cache.sqlite"
    emb = embed_images(unique_images(pairs), encoder, cache_path=cache, tta=encoder.tta, progress=False)
    return pairs, emb
