"""One LFW fold end to end: raw photos -> detect -> align -> ONNX embed (default TTA) -> verdicts."""

import numpy as np

from client_encoder.encoder import DLIB_THRESHOLD
from training.protocol import accuracy


def test_one_fold_end_to_end(fold0):
    pairs, emb = fold0
    vectors = dict(zip(emb.paths, emb.tta("jitter"), strict=True))
    distances = np.array([np.linalg.norm(vectors[p.left] - vectors[p.right]) for p in pairs])
    same = np.array([p.same for p in pairs])
    # dlib's published threshold: nothing here is fitted on LFW.
    fold_accuracy = accuracy(distances, same, DLIB_THRESHOLD)
    print(f"fold 0 accuracy at threshold {DLIB_THRESHOLD}: {fold_accuracy:.4f}")
    assert fold_accuracy >= 0.985
    assert emb.detector.count("centre-box") <= 5  # detectors find (almost) every face
