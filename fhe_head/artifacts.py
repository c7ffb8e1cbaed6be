"""Locating and checking a deployable head point (`artifacts/fhe_head/<point>/`)."""

from __future__ import annotations

import json
from pathlib import Path

from concrete.fhe.version import __version__ as concrete_version

from privface.errors import ArtifactError, CiphertextError
from privface.resources import artifacts_dir

ARTIFACTS_ROOT = artifacts_dir() / "fhe_head"
DEFAULT_POINT = "accurate"
POINTS = ("accurate", "fast")
# Every ciphertext travels as MAGIC + circuit id (8 bytes) + concrete's serialized value, so a
# ciphertext for another circuit or format is refused before it reaches the FHE runtime.
MAGIC = b"PFH1"


def point_dir(point: str | Path = DEFAULT_POINT) -> Path:
    path = Path(point)
    if not path.is_dir():
        path = ARTIFACTS_ROOT / str(point)
    if not path.is_dir():
        raise ArtifactError(f"no FHE head artifacts at {path} (build them: python -m training.train_head)")
    return path


def load_meta(directory: Path, needed: tuple[str, ...]) -> dict:
    for name in needed + ("meta.json",):
        if not (directory / name).is_file():
            raise ArtifactError(f"{directory}: missing {name}")
    meta = json.loads((directory / "meta.json").read_text())
    if meta.get("concrete_python_version") != concrete_version:
        raise ArtifactError(
            f"{directory} was compiled with concrete-python {meta.get('concrete_python_version')}, "
            f"this is {concrete_version}: rebuild the artifacts"
        )
    return meta


def circuit_tag(meta: dict) -> bytes:
    return MAGIC + bytes.fromhex(meta["circuit_id"])


def wrap(meta: dict, payload: bytes) -> bytes:
    return circuit_tag(meta) + payload


def unwrap(meta: dict, data: bytes, what: str = "ciphertext") -> bytes:
    tag = circuit_tag(meta)
    if not isinstance(data, (bytes, bytearray)) or len(data) <= len(tag):
        raise CiphertextError(f"{what} is empty or truncated")
    if data[: len(MAGIC)] != MAGIC:
        raise CiphertextError(f"{what} is not a privface ciphertext (bad header)")
    if data[: len(tag)] != tag:
        raise CiphertextError(f"{what} was made for another head circuit (point/version mismatch)")
    return bytes(data[len(tag) :])
