"""Costs of a shipped head point through the deployment classes (`FHEClient`, `FHEServer`).

Inputs are embeddings drawn around the head's mean: timing does not depend on the values.
"""

from __future__ import annotations

import numpy as np

from fhe_head.client import FHEClient
from fhe_head.server import FHEServer
from training.measure import median_seconds


def near_mean(client: FHEClient, rng: np.random.Generator) -> np.ndarray:
    """An embedding drawn around the head's mean."""
    return client.head.mean + 0.05 * rng.normal(size=client.head.mean.shape)


def keyed(point: str) -> tuple[FHEClient, FHEServer, object]:
    """A client with fresh keys and a server holding its evaluation keys."""
    client, server = FHEClient(point), FHEServer(point)
    client.generate_keys(force=True)
    return client, server, server.load_evaluation_keys(client.evaluation_keys())


def bench_point(point: str, runs: int) -> dict:
    """Medians of `runs`: key generation, encryption of one embedding, the server's run, decryption; sizes."""
    client, server = FHEClient(point), FHEServer(point)
    rng = np.random.default_rng(0)
    a, b = near_mean(client, rng), near_mean(client, rng)
    keygen_s, _ = median_seconds(lambda: client.generate_keys(force=True), max(3, runs // 5))
    serialized_keys = client.evaluation_keys()
    keys = server.load_evaluation_keys(serialized_keys)
    encrypt_s, template = median_seconds(lambda: client.encrypt(a), runs)
    probe = client.encrypt(b)
    run_s, result = median_seconds(lambda: server.run(template, probe, keys), runs)
    decrypt_s, bit = median_seconds(lambda: client.decrypt(result), runs)
    meta = server.meta
    return {
        "dims": meta["dims"],
        "n_bits": meta["n_bits"],
        "runs": runs,
        "keygen_s_median": keygen_s,
        "encrypt_one_embedding_s_median": encrypt_s,
        "server_run_s_median": run_s,
        "decrypt_s_median": decrypt_s,
        "eval_keys_mb": len(serialized_keys) / 1e6,
        "ciphertext_in_kb": len(template) / 1e3,
        "ciphertext_out_kb": len(result) / 1e3,
        "decrypted": bool(bit),
        "programmable_bootstrap_count": meta["programmable_bootstrap_count"],
        "max_bit_width": meta["max_bit_width"],
        "polynomial_sizes": meta["polynomial_sizes"],
        "global_p_error": meta["global_p_error"],
    }


def client_costs(point: str, runs: int) -> dict:
    """Encrypt one embedding and decrypt the bit, medians of `runs` (ms-scale client costs)."""
    client, server, keys = keyed(point)
    x = near_mean(client, np.random.default_rng(0))
    encrypt_s, template = median_seconds(lambda: client.encrypt(x), runs)
    result = server.run(template, client.encrypt(x), keys)
    decrypt_s, _ = median_seconds(lambda: client.decrypt(result), runs)
    return {"encrypt_one_embedding_s_median": encrypt_s, "decrypt_s_median": decrypt_s}
