from __future__ import annotations

import os
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"
ASTRONAUT = DATA / "astronaut.jpg"  # Eileen Collins, NASA, public domain (via scikit-image)
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
