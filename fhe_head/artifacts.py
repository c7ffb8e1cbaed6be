"""Locating and checking a deployable head point (`artifacts/fhe_head/<point>/`)."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from types import ModuleType

from privface_core.errors import ArtifactError, CiphertextError
from privface_core.resources import artifacts_dir

ARTIFACTS_ROOT = artifacts_dir() / "fhe_head"
DEFAULT_POINT = "accurate"
POINTS = ("accurate", "fast")
# Every ciphertext travels as MAGIC + circuit id (8 bytes) + concrete's serialized value, so a
# ciphertext for another circuit or format is refused before it reaches the FHE runtime.
MAGIC = b"PFH1"
# The files of a head folder, written by `fhe_head.build`; each role reads those it needs (`load_meta`).
META_FILE = "meta.json"  # what built the point: versions, circuit id, threshold, encoder
HEAD_FILE = "head.json"  # the head's clear parameters (`fhe_head.head.HeadParams`)
SERVER_FILE = "server.zip"  # the compiled circuit (the server's role)
CLIENT_SPECS_FILE = "client.specs.json"  # the circuit's client specs: keys and encryption (the client's role)
CLIENT_ZIP_FILE = "client.zip"  # Concrete-ML's FHEModelClient quantisers (concrete-ml points only)
FORMATS_FILE = "formats.json"  # the exact encodings of ciphertexts and keys (`fhe_head.formats`)
BATCH_META = "batch.json"  # the batched identification circuits (`fhe_head.server`)
# What built a point's circuit (meta.json's "engine"): both run behind the same client and server roles.
CONCRETE_ML = "concrete-ml"  # Concrete-ML's Brevitas build (`fhe_head.concrete_ml_head`): the shipped engine
CONCRETE_PYTHON = "concrete-python"  # the direct circuit (`fhe_head.circuit`); artifacts without "engine"
ENGINES = (CONCRETE_ML, CONCRETE_PYTHON)


def concrete_ml_deployment() -> ModuleType:
    """`concrete.ml.deployment` (FHEModelClient / FHEModelServer), imported quietly: through Brevitas it imports
    torch's extension builder, which prints a CUDA notice on stderr on any machine with nvcc but no GPU."""
    with contextlib.redirect_stderr(io.StringIO()):
        from concrete.ml import deployment
    return deployment


def point_dir(point: str | Path = DEFAULT_POINT) -> Path:
    path = Path(point)
    if not path.is_dir():
        path = ARTIFACTS_ROOT / str(point)
    if not path.is_dir():
        raise ArtifactError(f"no FHE head artifacts at {path} (build them: python -m training.train_head)")
    return path


def engine_of(meta: dict) -> str:
    """The engine that built a point (`ENGINES`); artifacts written before engines existed are concrete-python."""
    engine = meta.get("engine", CONCRETE_PYTHON)
    if engine not in ENGINES:
        raise ArtifactError(f"head artifacts of unknown engine {engine!r} (known: {', '.join(ENGINES)})")
    return engine


def read_meta(directory: Path) -> dict:
    """meta.json of a point as written, without the FHE runtime and without `load_meta`'s checks (for what
    needs only its fields: the circuit id, the encoder)."""
    path = directory / META_FILE
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ArtifactError(f"{path}: unreadable head metadata") from err
    if not isinstance(meta, dict):
        raise ArtifactError(f"{path}: unreadable head metadata")
    return meta


def head_encoder(point: str | Path = DEFAULT_POINT) -> str:
    """The face encoder a point's head was trained on (meta.json's "encoder"; heads from before the
    choice existed are dlib's). Reads meta.json only: no FHE runtime."""
    return read_meta(point_dir(point)).get("encoder", "dlib")


def key_file_in(key_dir: str | Path | None, meta: dict) -> Path | None:
    """Where a key owner keeps a point's keys in `key_dir` (one file per circuit); None without a key folder."""
    return Path(key_dir).expanduser() / f"{meta['circuit_id']}.keys" if key_dir else None


def key_parameters(directory: Path) -> dict:
    """The circuit's evaluation-key parameters: the "keyset" of its client specs (public; no key material)."""
    path = directory / CLIENT_SPECS_FILE
    try:
        return json.loads(path.read_text())["keyset"]
    except (OSError, ValueError, KeyError) as err:
        raise ArtifactError(f"{path}: the circuit's key parameters: {err}") from err


def load_meta(directory: Path, needed: tuple[str, ...]) -> dict:
    """meta.json of a point, after checking the files a role needs are there and the compiler versions match
    (a circuit only runs, and its keys only fit, under the versions that compiled it)."""
    meta = json.loads((directory / META_FILE).read_text()) if (directory / META_FILE).is_file() else {}
    engine = engine_of(meta)
    if engine == CONCRETE_ML and CLIENT_SPECS_FILE in needed:
        needed += (CLIENT_ZIP_FILE,)  # FHEModelClient's: the input and output quantisers
    for name in needed + (META_FILE,):
        if not (directory / name).is_file():
            raise ArtifactError(f"{directory}: missing {name}")
    from concrete.fhe.version import __version__ as concrete_version

    versions = {"concrete-python": (meta.get("concrete_python_version"), concrete_version)}
    if engine == CONCRETE_ML:
        from concrete.ml.version import __version__ as concrete_ml_version

        versions["concrete-ml"] = (meta.get("concrete_ml_version"), concrete_ml_version)
    for package, (built, installed) in versions.items():
        if built != installed:
            raise ArtifactError(
                f"{directory} was compiled with {package} {built}, this is {installed}: rebuild the artifacts"
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
