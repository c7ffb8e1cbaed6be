"""Embed many images once: a progress bar and an on-disk cache that survives interruption.

Each image is stored with every TTA view's descriptor (the "jitter" set, whose first two views
are the plain chip and its mirror), so any TTA mode is a slice of the same cache. Keys are the
image's sha256 and a pipeline key (ONNX model sha256 + the view set + the no-face policy):
a changed model or pipeline never reads stale vectors.

When no detector finds a face, `no_face="centre-box"` places dlib's landmark predictor on a
fixed central box (LFW's crops centre the labelled face) and the image is counted and listed;
`no_face="error"` stops instead. Nothing falls back silently.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from client_encoder.align import views_of
from client_encoder.encoder import DEFAULT_ENCODER, FUSED_DLIB_TTA, FaceEncoder, fuse, unit
from client_encoder.images import load_image
from client_encoder.models import cache_dir

STORED_TTA = "jitter"
PIPELINE_VERSION = "detect=hog,hog-up,cnn;min-rel-score=0.5;primary=area*centrality^2;chip=150/0.25;v2"
SFACE_PIPELINE = "detect=yunet>=0.8,retry<=640;primary=area*centrality^2;chip=arcface112;views=chip,mirror;v1"


@dataclass
class ImageEmbeddings:
    views: np.ndarray  # (n_images, n_views, 128)
    detector: list[str]  # per image: "hog", "hog-upsampled", "cnn", "centre-box"
    paths: list[Path]
    n_faces: list[int] = field(default_factory=list)

    def tta(self, mode: str) -> np.ndarray:
        """(n_images, 128): the mean over the views of a TTA mode (its views lead the stored ones)."""
        n = len(views_of(mode))
        if n > self.views.shape[1]:
            raise ValueError(f"TTA mode {mode!r} needs {n} views; only {self.views.shape[1]} were computed")
        return self.views[:, :n].mean(axis=1)

    def no_face_images(self) -> list[str]:
        return [str(p) for p, d in zip(self.paths, self.detector, strict=True) if d == "centre-box"]


class EmbeddingCache:
    """SQLite file of image sha256 -> per-view descriptors, for one pipeline key."""

    def __init__(self, path: Path, pipeline_key: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path)
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS embeddings (image_sha TEXT, pipeline TEXT, views BLOB, n_views INT, "
            "detector TEXT, n_faces INT, PRIMARY KEY (image_sha, pipeline))"
        )
        self.pipeline = pipeline_key

    def get(self, image_sha: str) -> tuple[np.ndarray, str, int] | None:
        row = self.db.execute(
            "SELECT views, n_views, detector, n_faces FROM embeddings WHERE image_sha=? AND pipeline=?",
            (image_sha, self.pipeline),
        ).fetchone()
        if row is None:
            return None
        return np.frombuffer(row[0], dtype=np.float32).reshape(row[1], -1), row[2], row[3]

    def put(self, image_sha: str, views: np.ndarray, detector: str, n_faces: int) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO embeddings VALUES (?, ?, ?, ?, ?, ?)",
            (image_sha, self.pipeline, views.astype(np.float32).tobytes(), len(views), detector, n_faces),
        )

    def commit(self) -> None:
        self.db.commit()

    def close(self) -> None:
        self.db.commit()
        self.db.close()


def pipeline_key(encoder: FaceEncoder, no_face: str, tta: str) -> str:
    pipeline = SFACE_PIPELINE if encoder.encoder == "sface" else PIPELINE_VERSION
    return json.dumps({"model": encoder.model_sha256, "views": tta, "pipeline": pipeline, "no_face": no_face})


def _embed_one(encoder: FaceEncoder, pixels: np.ndarray, no_face: str, tta: str) -> tuple[np.ndarray, str, int]:
    located = encoder.locate(pixels, no_face=no_face, tta=tta)
    return encoder.embedder.embed_chips(located.chips), located.detector, len(located.faces)


def embed_images(
    paths: list[Path],
    encoder: FaceEncoder | None = None,
    cache_path: Path | None = None,
    no_face: str = "centre-box",
    progress: bool = True,
    desc: str = "embedding",
    tta: str = STORED_TTA,
) -> ImageEmbeddings:
    """Descriptors of every view of `tta` for every image, reading and filling the cache."""
    encoder = encoder or FaceEncoder(encoder="dlib")
    if encoder.encoder == "fused":
        raise ValueError("embed the fused encoder's two models apart: encoder_vectors(..., 'fused')")
    if encoder.encoder == "sface":
        tta = encoder.tta  # SFace's views are its chip and mirror whatever dlib's mode
    cache = EmbeddingCache(cache_path or cache_dir() / "embeddings.sqlite", pipeline_key(encoder, no_face, tta))
    views, detectors, n_faces = [], [], []
    try:
        for done, path in enumerate(tqdm(paths, desc=desc, unit="img", disable=not progress, mininterval=2)):
            data = Path(path).read_bytes()
            sha = hashlib.sha256(data).hexdigest()
            hit = cache.get(sha)
            if hit is None:
                hit = _embed_one(encoder, load_image(data), no_face, tta)
                cache.put(sha, *hit)
                if done % 50 == 0:
                    cache.commit()  # an interrupted run resumes from here
            views.append(hit[0])
            detectors.append(hit[1])
            n_faces.append(hit[2])
    finally:
        cache.close()
    return ImageEmbeddings(np.stack(views), detectors, list(paths), n_faces)


@dataclass
class ImageVectors:
    """One encoder's embedding of each image (float64), as its FaceEncoder computes it."""

    vectors: np.ndarray  # (n_images, dims)
    paths: list[Path]
    detector: list[str]
    encoder: str
    model_sha256: str

    def no_face_images(self) -> list[str]:
        return [str(p) for p, d in zip(self.paths, self.detector, strict=True) if "centre-box" in d]


def encoder_vectors(
    paths: list[Path],
    encoder: str = DEFAULT_ENCODER,
    cache_path: Path | None = None,
    no_face: str = "centre-box",
    progress: bool = True,
    desc: str = "embedding",
) -> ImageVectors:
    """Every image's embedding with `encoder` ("sface", "dlib" with its 18-view TTA, or "fused"), cached."""
    parts = {}
    dlib_tta = FUSED_DLIB_TTA if encoder == "fused" else "jitter"
    for name in ("dlib", "sface") if encoder == "fused" else (encoder,):
        model = FaceEncoder(encoder=name, tta=dlib_tta)
        parts[name] = embed_images(paths, model, cache_path, no_face, progress, f"{desc} ({name})", tta=model.tta)
    if encoder == "dlib":
        vectors = parts["dlib"].tta("jitter")
    elif encoder == "sface":
        vectors = unit(parts["sface"].views.mean(axis=1))
    else:
        vectors = fuse(parts["dlib"].tta(dlib_tta), unit(parts["sface"].views.mean(axis=1)))
    detectors = ["+".join(d) for d in zip(*(p.detector for p in parts.values()), strict=True)]
    return ImageVectors(
        np.asarray(vectors, np.float64), list(paths), detectors, encoder, FaceEncoder.sha256_of(encoder)
    )
