"""One LFW fold end to end: raw photos -> detect -> align -> ONNX embed (flip TTA) -> verdicts."""

import numpy as np

from client_encoder import FaceEncoder
from client_encoder.encoder import DLIB_THRESHOLD
from training.embeddings import embed_images
from training.lfw import LFW, unique_images
from training.protocol import accuracy


def test_one_fold_end_to_end(lfw_dir, tmp_path):
    pairs = [p for p in LFW(lfw_dir).view2() if p.fold == 0]
    paths = unique_images(pairs)
    emb = embed_images(paths, FaceEncoder(tta="flip"), cache_path=tmp_path / "cache.sqlite", tta="flip", progress=False)
    vectors = {p: v for p, v in zip(paths, emb.tta("flip"), strict=True)}
    distances = np.array([np.linalg.norm(vectors[p.left] - vectors[p.right]) for p in pairs])
    same = np.array([p.same for p in pairs])
    # dlib's published threshold: nothing here is fitted on LFW.
    fold_accuracy = accuracy(distances, same, DLIB_THRESHOLD)
    print(f"fold 0 accuracy at threshold {DLIB_THRESHOLD}: {fold_accuracy:.4f}")
    assert fold_accuracy >= 0.985
    assert emb.detector.count("centre-box") <= 5  # detectors find (almost) every face
