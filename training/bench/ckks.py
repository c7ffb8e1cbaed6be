"""The CKKS peer (TenSEAL): encrypted squared Euclidean distance of two separately encrypted embeddings.

The key owner decrypts the *score* and thresholds it, so it learns how close the faces are; the FHE
head returns one bit. Measured here on LFW View 2 for the benchmark's comparison.
"""

from __future__ import annotations

import time

import numpy as np

from training.head_fit import pca
from training.pairs import PairData, folds

POLY_MODULUS_DEGREE = 8192
COEFF_BITS = (60, 40, 40, 60)


def ckks_context(poly_modulus_degree: int = POLY_MODULUS_DEGREE, coeff_bits: tuple[int, ...] = COEFF_BITS):
    import tenseal as ts

    ctx = ts.context(ts.SCHEME_TYPE.CKKS, poly_modulus_degree, -1, list(coeff_bits))
    ctx.global_scale = 2 ** coeff_bits[1]
    ctx.generate_galois_keys()
    ctx.generate_relin_keys()
    return ctx


def ckks_encrypt(ctx, vector: np.ndarray) -> bytes:
    """Client: one embedding, encrypted on its own."""
    import tenseal as ts

    return ts.ckks_vector(ctx, [float(v) for v in vector]).serialize()


def ckks_server_distance(public_ctx, template: bytes, probe: bytes) -> bytes:
    """Server (no secret key): encrypted squared Euclidean distance, one ciphertext out."""
    import tenseal as ts

    a, b = ts.ckks_vector_from(public_ctx, template), ts.ckks_vector_from(public_ctx, probe)
    diff = a - b
    return diff.dot(diff).serialize()


def ckks_decrypt(ctx, result: bytes) -> float:
    import tenseal as ts

    return float(ts.ckks_vector_from(ctx, result).decrypt()[0])


def public_context(ctx):
    """What the server receives: the context without the secret key (relinearisation + Galois keys)."""
    import tenseal as ts

    return ts.context_from(ctx.serialize(save_secret_key=False))


def project_per_fold(
    a_all: np.ndarray, b_all: np.ndarray, fold_of: np.ndarray, dims: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """Each fold's embeddings as the client would encrypt them: all 128 dimensions (dims None), or a PCA
    to `dims` fitted on the other folds' images, as the head does."""
    enc_a, enc_b = np.empty_like(a_all[:, : dims or 128]), np.empty_like(b_all[:, : dims or 128])
    for fold in range(10):
        test = fold_of == fold
        if dims is None:
            enc_a[test], enc_b[test] = a_all[test], b_all[test]
            continue
        mean, proj = pca(np.concatenate([a_all[~test], b_all[~test]]), dims)
        enc_a[test], enc_b[test] = (a_all[test] - mean) @ proj.T, (b_all[test] - mean) @ proj.T
    return enc_a, enc_b


def encrypted_scores(ctx, pub, enc_a: np.ndarray, enc_b: np.ndarray, chosen: np.ndarray, timing_pairs: int) -> dict:
    """Decrypted CKKS scores of the `chosen` pairs; medians of the first `timing_pairs` pairs' timings, sizes."""
    times: dict[str, list[float]] = {"encrypt": [], "server": [], "decrypt": []}
    scores, sizes = {}, {}
    for k, i in enumerate(chosen):
        t0 = time.perf_counter()
        template = ckks_encrypt(ctx, enc_a[i])
        t1 = time.perf_counter()
        probe = ckks_encrypt(ctx, enc_b[i])
        t2 = time.perf_counter()
        result = ckks_server_distance(pub, template, probe)
        t3 = time.perf_counter()
        scores[i] = ckks_decrypt(ctx, result)
        t4 = time.perf_counter()
        if k < timing_pairs:
            times["encrypt"] += [t1 - t0, t2 - t1]
            times["server"].append(t3 - t2)
            times["decrypt"].append(t4 - t3)
            sizes = {"ciphertext_in_kb": len(template) / 1e3, "ciphertext_out_kb": len(result) / 1e3}
    return {
        "scores": scores,
        "encrypt_one_embedding_s_median": float(np.median(times["encrypt"])),
        "server_run_s_median": float(np.median(times["server"])),
        "decrypt_s_median": float(np.median(times["decrypt"])),
        "timing_pairs": timing_pairs,
        **sizes,
    }


def _context_costs(ctx) -> dict:
    import tenseal as ts

    pub_bytes = ctx.serialize(save_secret_key=False)
    t0 = time.perf_counter()
    for _ in range(3):
        ckks_context()
    return {
        "available": True,
        "library": f"TenSEAL {ts.__version__} (Microsoft SEAL), CKKS",
        "parameters": {
            "poly_modulus_degree": POLY_MODULUS_DEGREE,
            "coeff_mod_bit_sizes": list(COEFF_BITS),
            "scale_bits": COEFF_BITS[1],
        },
        "security": "128-bit (SEAL's default modulus bound for N=8192)",
        "keygen_s": (time.perf_counter() - t0) / 3,
        "public_context_mb": len(pub_bytes) / 1e6,
        "variants": {},
    }


def ckks_section(
    lfw,
    dims_list: tuple[int | None, ...] = (None, 64),
    timing_pairs: int = 30,
    encrypted_pairs: int | None = 600,
    log=print,
) -> dict:
    """Per embedding size (None = full 128-d; else PCA fitted on the training folds like the head):
    costs of the protocol on `timing_pairs` pairs; 10-fold accuracy over all 6000 pairs, whose scores
    are decrypted CKKS results for an evenly spread sample of `encrypted_pairs` (None: all) and clear
    distances for the rest (labelled; the max error shows they are interchangeable)."""
    try:
        import tenseal as ts
    except ImportError as err:
        return {"available": False, "why": f"tenseal not importable: {err}"}
    from training.embeddings import embed_images
    from training.lfw import unique_images
    from training.protocol import ten_fold

    pairs = lfw.view2()
    data = PairData(embed_images(unique_images(pairs), progress=False))
    a_all, b_all, same, _ = data.arrays(pairs)
    fold_of = folds(pairs)
    ctx = ckks_context()
    pub = ts.context_from(ctx.serialize(save_secret_key=False))
    out = _context_costs(ctx)
    chosen = np.arange(len(pairs))
    if encrypted_pairs is not None and encrypted_pairs < len(pairs):
        chosen = np.linspace(0, len(pairs) - 1, encrypted_pairs).astype(int)
    for dims in dims_list:
        label = "128-d" if dims is None else f"PCA {dims}-d"
        enc_a, enc_b = project_per_fold(a_all, b_all, fold_of, dims)
        clear = np.sum((enc_a - enc_b) ** 2, axis=1)
        log(f"CKKS {label}: {len(chosen)} pairs encrypted ...")
        costs = encrypted_scores(ctx, pub, enc_a, enc_b, chosen, timing_pairs)
        scores = clear.copy()
        for i, score in costs.pop("scores").items():
            scores[i] = score
        folded = ten_fold(scores, same, fold_of)
        out["variants"][label] = {
            "dims": dims or 128,
            **costs,
            "accuracy": folded["mean_accuracy"],
            "accuracy_std": folded["std"],
            "accuracy_clear_same_scores": ten_fold(clear, same, fold_of)["mean_accuracy"],
            "max_abs_error_vs_clear": float(np.max(np.abs(scores[chosen] - clear[chosen]))),
            "n_pairs_encrypted": len(chosen),
            "n_pairs": len(pairs),
        }
        log(f"  {out['variants'][label]}")
    return out
