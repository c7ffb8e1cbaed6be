"""Benchmark: the FHE head against full-image FHE and against a CKKS peer, with plots.

    python -m training.benchmark --lfw-dir PATH          (~5-10 min on 2 cores)
    python -m training.benchmark_baseline --lfw-dir PATH  (the full-image FHE baseline, run first; ~30 min)

Why: the head's claim is that running the face network in clear on the client and only a tiny
head in TFHE makes encrypted verification cheap without giving up the "server learns nothing,
the key owner learns one bit" property. This puts figures beside it, all from this machine:

1. FHE head (TFHE, concrete-python): read from artifacts/metrics/fhe_head_bench.json and
   fhe_frontier.json (each figure says its file); a shipped point whose dimension no longer
   matches those files is re-measured here with `training.bench_head.bench_point` (labelled).
2. Full-image FHE (Concrete-ML, siamese CNN on encrypted 2 x crops): read from
   artifacts/bench/baseline.json, written by `python -m training.benchmark_baseline`.
3. CKKS peer (TenSEAL): encrypted squared Euclidean distance of two separately encrypted
   embeddings; the key owner decrypts the *score* and thresholds it. 10-fold LFW accuracy.
4. Scaling: head latency/accuracy against d (frontier file) and against d and input bits
   (artifacts/bench/scaling.json from `python -m training.bench_scaling`), accuracy-latency plot,
   1:N identification (N sequential runs of the fast point through FHEServer).

Writes artifacts/bench/benchmark.json, benchmark.md and small PNG plots.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from privface.resources import artifacts_dir

BENCH_DIR = artifacts_dir() / "bench"
METRICS = artifacts_dir() / "metrics"
HEAD_BENCH = METRICS / "fhe_head_bench.json"
FRONTIER = METRICS / "fhe_frontier.json"
LFW_FHE = METRICS / "lfw_fhe.json"
ONE_TO_N = (1, 2, 4, 8)


def machine() -> dict:
    from training.bench_encoder import _cpu_name

    return {"cpu": _cpu_name(), "cores": os.cpu_count()}


def machine_label(m: dict) -> str:
    return f"{m['cpu']}, {m['cores']} cores, no GPU"


def _rel(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(artifacts_dir().parent))
    except ValueError:
        return str(path)


def _read(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


# ---- 1. FHE head ---------------------------------------------------------------------------------
def head_section(remeasure_runs: int = 5) -> dict:
    """Per shipped point: costs from fhe_head_bench.json (or re-measured), accuracy from fhe_frontier.json."""
    from fhe_head.artifacts import ARTIFACTS_ROOT, POINTS

    bench, frontier, lfw_fhe = _read(HEAD_BENCH), _read(FRONTIER), _read(LFW_FHE)
    points = {}
    for name in POINTS:
        meta = _read(ARTIFACTS_ROOT / name / "meta.json")
        if meta is None:
            continue
        row: dict = {"dims": meta["dims"], "n_bits": meta["n_bits"], "pbs": meta["programmable_bootstrap_count"]}
        cost = (bench or {}).get("points", {}).get(name)
        in_frontier = [p for p in (frontier or {}).get("points", []) if p["dims"] == meta["dims"]]
        if cost and cost["dims"] == meta["dims"]:
            row.update(cost=cost, cost_source=_rel(HEAD_BENCH))
        elif in_frontier:
            fp = in_frontier[0]
            row.update(
                cost={
                    "server_run_s_median": fp["server_run_s_median"],
                    "keygen_s_median": fp["keygen_s"],
                    "eval_keys_mb": fp["eval_keys_mb"],
                    "ciphertext_in_kb": fp["ciphertext_kb"],
                    "ciphertext_out_kb": fp["result_kb"],
                    **_client_costs(name, remeasure_runs),
                },
                cost_source=f"{_rel(FRONTIER)} (server run, keygen, sizes: {_rel(HEAD_BENCH)} describes another d "
                f"for this point); encrypt/decrypt measured by training.benchmark (median of {remeasure_runs})",
            )
        else:
            from training.bench_head import bench_point

            row.update(
                cost=bench_point(name, remeasure_runs),
                cost_source=f"measured by training.benchmark (median of {remeasure_runs}): "
                f"{_rel(HEAD_BENCH)} is missing or describes another d for this point",
            )
        match = [p for p in (frontier or {}).get("points", []) if p["dims"] == meta["dims"]]
        if match:
            row.update(
                accuracy_simulated=match[0]["accuracy_simulated"],
                accuracy_std=match[0]["view2"].get("std_clear_quantised"),
                accuracy_source=f"{_rel(FRONTIER)} (10-fold View 2, Concrete simulation = clear integer model)",
            )
        else:
            row.update(accuracy_simulated=None, accuracy_source=f"no d={meta['dims']} point in {_rel(FRONTIER)}")
        if lfw_fhe and lfw_fhe.get("point") == name:
            row["real_fhe_sample"] = {
                "n_pairs": lfw_fhe["n_pairs_fhe"],
                "accuracy": lfw_fhe["fhe_accuracy"],
                "source": _rel(LFW_FHE),
            }
        points[name] = row
    return {"points": points, "machine_of_files": (bench or {}).get("machine")}


def _client_costs(point: str, runs: int) -> dict:
    """Encrypt one embedding and decrypt the bit, medians of `runs` (ms-scale client costs)."""
    from fhe_head.client import FHEClient
    from fhe_head.server import FHEServer

    client, server = FHEClient(point), FHEServer(point)
    client.generate_keys(force=True)
    keys = server.load_evaluation_keys(client.evaluation_keys())
    x = client.head.mean + 0.05 * np.random.default_rng(0).normal(size=client.head.mean.shape)
    enc = []
    for _ in range(runs):
        t0 = time.perf_counter()
        template = client.encrypt(x)
        enc.append(time.perf_counter() - t0)
    result = server.run(template, client.encrypt(x), keys)
    dec = []
    for _ in range(runs):
        t0 = time.perf_counter()
        client.decrypt(result)
        dec.append(time.perf_counter() - t0)
    return {"encrypt_one_embedding_s_median": float(np.median(enc)), "decrypt_s_median": float(np.median(dec))}


# ---- 2. full-image FHE baseline ------------------------------------------------------------------
def load_baselines(bench_dir: Path | None = None) -> dict | None:
    """artifacts/bench/baseline*.json (one per `benchmark_baseline` run) merged; latencies of variants
    not run in real FHE estimated from one that was (labelled)."""
    from training.benchmark_baseline import add_estimates

    merged: dict | None = None
    for path in sorted((bench_dir or BENCH_DIR).glob("baseline*.json")):
        data = json.loads(path.read_text())
        if merged is None:
            merged = {**data, "variants": {}, "sources": []}
        merged["variants"].update(data["variants"])
        merged["sources"].append(_rel(path))
    if merged:
        add_estimates(merged["variants"])
    return merged


# ---- 3. CKKS peer --------------------------------------------------------------------------------
def ckks_context(poly_modulus_degree: int = 8192, coeff_bits: tuple[int, ...] = (60, 40, 40, 60)):
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


def _pca_project(train_images: np.ndarray, dims: int) -> tuple[np.ndarray, np.ndarray]:
    mean = train_images.mean(axis=0)
    _, _, vt = np.linalg.svd(train_images - mean, full_matrices=False)
    return mean, vt[:dims]


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
    from training.train_head import PairData

    pairs = lfw.view2()
    data = PairData(embed_images(unique_images(pairs), progress=False))
    a_all, b_all, same, _ = data.arrays(pairs)
    folds = np.array([p.fold for p in pairs])
    ctx = ckks_context()
    pub_bytes = ctx.serialize(save_secret_key=False)
    pub = ts.context_from(pub_bytes)
    t0 = time.perf_counter()
    for _ in range(3):
        ckks_context()
    keygen_s = (time.perf_counter() - t0) / 3
    out: dict = {
        "available": True,
        "library": f"TenSEAL {ts.__version__} (Microsoft SEAL), CKKS",
        "parameters": {"poly_modulus_degree": 8192, "coeff_mod_bit_sizes": [60, 40, 40, 60], "scale_bits": 40},
        "security": "128-bit (SEAL's default modulus bound for N=8192)",
        "keygen_s": keygen_s,
        "public_context_mb": len(pub_bytes) / 1e6,
        "variants": {},
    }
    for dims in dims_list:
        label = "128-d" if dims is None else f"PCA {dims}-d"
        enc_a, enc_b = np.empty_like(a_all[:, : dims or 128]), np.empty_like(b_all[:, : dims or 128])
        for fold in range(10):  # per-fold PCA fitted on the other folds' images, as the head does
            test = folds == fold
            if dims is None:
                enc_a[test], enc_b[test] = a_all[test], b_all[test]
                continue
            train_imgs = np.concatenate([a_all[~test], b_all[~test]])
            mean, proj = _pca_project(train_imgs, dims)
            enc_a[test], enc_b[test] = (a_all[test] - mean) @ proj.T, (b_all[test] - mean) @ proj.T
        clear = np.sum((enc_a - enc_b) ** 2, axis=1)
        times = {"encrypt": [], "server": [], "decrypt": []}
        scores = clear.copy()
        sizes = {}
        chosen = np.arange(len(pairs))
        if encrypted_pairs is not None and encrypted_pairs < len(pairs):
            chosen = np.linspace(0, len(pairs) - 1, encrypted_pairs).astype(int)
        log(f"CKKS {label}: {len(chosen)} pairs encrypted ...")
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
        folded = ten_fold(scores, same, folds)
        out["variants"][label] = {
            "dims": dims or 128,
            "encrypt_one_embedding_s_median": float(np.median(times["encrypt"])),
            "server_run_s_median": float(np.median(times["server"])),
            "decrypt_s_median": float(np.median(times["decrypt"])),
            "timing_pairs": timing_pairs,
            **sizes,
            "accuracy": folded["mean_accuracy"],
            "accuracy_std": folded["std"],
            "accuracy_clear_same_scores": ten_fold(clear, same, folds)["mean_accuracy"],
            "max_abs_error_vs_clear": float(np.max(np.abs(scores[chosen] - clear[chosen]))),
            "n_pairs_encrypted": len(chosen),
            "n_pairs": len(pairs),
        }
        log(f"  {out['variants'][label]}")
    return out


# ---- 4. 1:N --------------------------------------------------------------------------------------
def one_to_n(point: str = "fast", sizes: tuple[int, ...] = ONE_TO_N, estimate_point: str | None = "accurate") -> dict:
    """N sequential server runs (one probe against N templates) of `point`, measured; and the other
    point as one measured run x N (labelled estimate)."""
    from fhe_head.client import FHEClient
    from fhe_head.server import FHEServer

    out: dict = {}
    rng = np.random.default_rng(0)
    for name, measured in ((point, True), (estimate_point, False)):
        if name is None:
            continue
        client, server = FHEClient(name), FHEServer(name)
        client.generate_keys(force=True)
        keys = server.load_evaluation_keys(client.evaluation_keys())
        shape = client.head.mean.shape
        probe = client.encrypt(client.head.mean + 0.05 * rng.normal(size=shape))
        gallery = [client.encrypt(client.head.mean + 0.05 * rng.normal(size=shape)) for _ in range(max(sizes))]
        server.run(gallery[0], probe, keys)  # warm-up
        rows = []
        if measured:
            for n in sizes:
                t0, c0 = time.perf_counter(), time.process_time()
                bits = [client.decrypt(server.run(t, probe, keys)) for t in gallery[:n]]
                rows.append(
                    {
                        "n": n,
                        "latency_s": time.perf_counter() - t0,
                        "cpu_s": time.process_time() - c0,
                        "decrypted": len(bits),
                    }
                )
            kind = "measured: N sequential FHEServer.run + decrypt"
        else:
            runs, cpu = [], []
            for t in gallery[:3]:
                c0 = time.process_time()
                server.run(t, probe, keys)
                cpu.append(time.process_time() - c0)
                runs.append(server.last_run_s)
            one, one_cpu = float(np.median(runs)), float(np.median(cpu))
            rows = [{"n": n, "latency_s": one * n, "cpu_s": one_cpu * n} for n in sizes]
            kind = "estimate: median of 3 measured runs x N"
        out[name] = {"dims": server.meta["dims"], "kind": kind, "rows": rows}
    return out


# ---- summary, markdown, plots --------------------------------------------------------------------
def headline(result: dict) -> dict:
    """The README figures: full-image FHE / head latency ratios, and the CKKS comparison."""
    head = result["head"]["points"]
    base = (result.get("baseline") or {}).get("variants", {})
    rows = []
    for bname, b in base.items():
        if "real_fhe_one_pair" in b:
            lat, kind = b["real_fhe_one_pair"]["server_run_s"], "measured"
        elif "estimate" in b:
            lat, kind = b["estimate"]["server_run_s_by_pbs"], "estimate"
        else:
            continue
        for hname, h in head.items():
            hl = h["cost"]["server_run_s_median"]
            rows.append(
                {
                    "baseline_pbs": b["programmable_bootstrap_count"],
                    "head_pbs": h["pbs"],
                    "baseline": bname,
                    "baseline_kind": kind,
                    "baseline_s": lat,
                    "head": hname,
                    "head_s": hl,
                    "ratio": lat / hl,
                }
            )
    # Load-robust cross-check: CPU seconds of one server run (all threads), where both were measured.
    cpu_rows = []
    for bname, b in base.items():
        real = b.get("real_fhe_one_pair") or {}
        for hname, v in (result.get("one_to_n") or {}).items():
            if "server_run_cpu_s" in real and v["rows"] and "cpu_s" in v["rows"][0]:
                head_cpu = v["rows"][0]["cpu_s"] / v["rows"][0]["n"]
                cpu_rows.append(
                    {
                        "baseline": bname,
                        "baseline_cpu_s": real["server_run_cpu_s"],
                        "head": hname,
                        "head_cpu_s": head_cpu,
                        "ratio": real["server_run_cpu_s"] / head_cpu,
                    }
                )
    return {"full_image_over_head": rows, "full_image_over_head_cpu": cpu_rows}


def _fmt_s(s: float | None) -> str:
    if s is None:
        return "—"
    if s >= 60:
        return f"{s / 60:.1f} min"
    return f"{s:.2f} s" if s >= 0.1 else f"{s * 1e3:.1f} ms"


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.2f}%"


def _header(*cells: str) -> list[str]:
    """A Markdown table's header row and its separator."""
    return [_row(*cells), "|" + "---|" * len(cells)]


def _row(*cells: str) -> str:
    return "| " + " | ".join(cells) + " |"


def write_markdown(result: dict) -> str:
    m = machine_label(result["machine"])
    head = result["head"]["points"]
    lines = [
        "# Benchmark: FHE head vs full-image FHE vs CKKS peer",
        "",
        f"Machine: **{m}** (every figure below measured on it unless its source file says otherwise).",
        f"Generated by `python -m training.benchmark` at {result['generated']}; "
        "JSON: `artifacts/bench/benchmark.json`.",
        "",
    ]
    if "load_average_1min_at_start" in result:
        lines += [
            f"1-minute load average while this ran: {result['load_average_1min_at_start']:.1f} at the start, "
            f"{result.get('load_average_1min_at_end', float('nan')):.1f} at the end, on {result['machine']['cores']} "
            "cores (a shared machine: other jobs ran too, so timings here are pessimistic, not best cases).",
            "",
        ]
    lines += [
        "## Headline",
        "",
    ]
    ratios = result["headline"]["full_image_over_head"]
    if ratios:
        lines += [
            _row(
                "full-image FHE model",
                "its server latency",
                "PBS",
                "FHE head point",
                "head latency",
                "PBS",
                "latency ratio",
            ),
            "|---|---|---|---|---|---|---|",
        ]
        for r in ratios:
            lines.append(
                f"| {r['baseline']} ({r['baseline_kind']}) | {_fmt_s(r['baseline_s'])} | "
                f"{r.get('baseline_pbs', '—')} | "
                f"{r['head']} | {_fmt_s(r['head_s'])} | {r.get('head_pbs', '—')} | **{r['ratio']:.0f}x** |"
            )
        cpu_rows = result["headline"].get("full_image_over_head_cpu") or []
        if cpu_rows:
            lines += [
                "",
                "Same comparison in CPU seconds of one server run (all threads; less sensitive to the machine's "
                "load than wall time, which other jobs inflated during these runs):",
                "",
            ]
            for r in cpu_rows:
                lines.append(
                    f"- {r['baseline']}: {r['baseline_cpu_s']:.0f} CPU-s vs head `{r['head']}`: "
                    f"{r['head_cpu_s']:.2f} CPU-s -> **{r['ratio']:.0f}x**"
                )
        lines += [
            "",
            "Wall-time ratios compare figures taken at different times (head figures from their source files, "
            "see section 1); the load average of each run is in the JSON.",
        ]
    else:
        lines.append("Full-image FHE baseline not run yet (`python -m training.benchmark_baseline`).")
    ckks = result.get("ckks") or {}
    lines += [
        "",
        *_header(
            "system",
            "encrypted output",
            "key owner learns",
            "LFW accuracy",
            "server",
            "client encrypt",
            "keys",
            "ct in / out",
        ),
    ]
    for name, h in head.items():
        c = h["cost"]
        lines.append(
            f"| FHE head `{name}` (TFHE, d={h['dims']}) | 1 bit | same/different only | "
            f"{_pct(h.get('accuracy_simulated'))} | "
            f"{_fmt_s(c['server_run_s_median'])} | {_fmt_s(c['encrypt_one_embedding_s_median'])} | "
            f"{c['eval_keys_mb']:.1f} MB | {c['ciphertext_in_kb']:.1f} / {c['ciphertext_out_kb']:.1f} KB |"
        )
    if ckks.get("available"):
        for label, v in ckks["variants"].items():
            lines.append(
                f"| CKKS peer ({label}, TenSEAL) | squared distance | the score | {_pct(v['accuracy'])} | "
                f"{_fmt_s(v['server_run_s_median'])} | {_fmt_s(v['encrypt_one_embedding_s_median'])} | "
                f"{ckks['public_context_mb']:.1f} MB | {v['ciphertext_in_kb']:.1f} / {v['ciphertext_out_kb']:.1f} KB |"
            )
    else:
        lines.append(f"| CKKS peer | — | — | — | — | — | — | not run: {ckks.get('why', 'skipped')} |")
    for bname, b in (result.get("baseline") or {}).get("variants", {}).items():
        real = b.get("real_fhe_one_pair")
        lat = real["server_run_s"] if real else b.get("estimate", {}).get("server_run_s_by_pbs")
        tag = "measured" if real else "estimate"
        keys = (
            f"{real['eval_keys_mb']:.0f} MB"
            if real
            else f"~{b['size_of_bootstrap_keys_mb'] + b['size_of_keyswitch_keys_mb']:.0f} MB (uncompressed)"
        )
        io = (
            f"{sum(real['ciphertext_in_kb_each']):.0f} / {real['ciphertext_out_kb']:.0f} KB"
            if real
            else f"~{b['size_of_inputs_kb']:.0f} / {b['size_of_outputs_kb']:.0f} KB"
        )
        lines.append(
            f"| full-image FHE `{bname}` (TFHE, Concrete-ML CNN) | a logit | the logit | "
            f"{_pct(b['accuracy_simulated'])} (1 fold) | {_fmt_s(lat)} ({tag}) | "
            f"{_fmt_s(real['encrypt_both_s'] / 2) if real else '—'} | {keys} | {io} |"
        )
    lines += [
        "",
        "Privacy: the FHE head returns one encrypted bit, so the key owner learns only same/different; the "
        "CKKS peer's server returns an encrypted *score* (squared distance), so the key owner learns how close "
        "the faces are (useful for probing a template) and thresholding happens on the client, which the "
        "server cannot enforce. CKKS is also approximate (the decrypted score carries noise; see the max error "
        "below). The Concrete-ML baseline returns an encrypted logit, i.e. a score as well. In all three the "
        "server sees no face, embedding or result.",
        "",
        "## 1. FHE head (shipped points)",
        "",
        *_header(
            "point",
            "d",
            "PBS",
            "keygen",
            "encrypt one",
            "server run",
            "decrypt",
            "eval keys",
            "ct in / out",
            "LFW acc.",
            "cost from",
            "accuracy from",
        ),
    ]
    for name, h in head.items():
        c = h["cost"]
        lines.append(
            f"| {name} | {h['dims']} | {h['pbs']} | {_fmt_s(c['keygen_s_median'])} | "
            f"{_fmt_s(c['encrypt_one_embedding_s_median'])} | {_fmt_s(c['server_run_s_median'])} | "
            f"{_fmt_s(c['decrypt_s_median'])} | {c['eval_keys_mb']:.1f} MB | {c['ciphertext_in_kb']:.1f} / "
            f"{c['ciphertext_out_kb']:.1f} KB | {_pct(h.get('accuracy_simulated'))} | {h['cost_source']} | "
            f"{h['accuracy_source']} |"
        )
        if "real_fhe_sample" in h:
            s = h["real_fhe_sample"]
            lines.append(
                f"|  | real FHE on {s['n_pairs']} pairs: {_pct(s['accuracy'])} ({s['source']}) | | | | | | | | | | |"
            )
    base = result.get("baseline")
    lines += ["", "## 2. Full-image FHE baseline (Concrete-ML siamese CNN on encrypted crops)", ""]
    if base:
        lines += [
            f"Protocol: {base['protocol']}. Concrete-ML {base['concrete_ml']}. "
            f"Sources: {', '.join(f'`{p}`' for p in base.get('sources', []))}.",
            "",
        ]
        lines += [
            _row(
                "model",
                "input",
                "channels",
                "bits",
                "params",
                "acc. clear (fake-quant)",
                "acc. FHE-simulated",
                "PBS",
                "max bits",
                "keygen",
                "server run",
                "eval keys",
            ),
            "|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for bname, b in base["variants"].items():
            real = b.get("real_fhe_one_pair")
            run = (
                f"{_fmt_s(real['server_run_s'])} (measured, 1 pair)"
                if real
                else (
                    f"{_fmt_s(b['estimate']['server_run_s_by_pbs'])} (**estimate**: PBS x measured per-PBS; "
                    "by complexity "
                    f"{_fmt_s(b['estimate']['server_run_s_by_complexity'])})"
                    if "estimate" in b
                    else "—"
                )
            )
            keys = f"{real['eval_keys_mb']:.0f} MB" if real else "—"
            lines.append(
                f"| {bname} ({b['epochs']} epochs, {b['train_s'] / 60:.0f} min) | {b['size']}x{b['size']} x 2 | "
                f"{b['channels']} | {b['weight_activation_bits']} | "
                f"{b['parameters']} | {_pct(b['accuracy_clear_fake_quant'])} | {_pct(b['accuracy_simulated'])} "
                f"({b['simulated_pairs']} pairs) | {b['programmable_bootstrap_count']} | {b['max_bit_width']} | "
                f"{_fmt_s(real['keygen_s']) if real else '—'} | {run} | {keys} |"
            )
        for bname, b in base["variants"].items():
            real = b.get("real_fhe_one_pair")
            if real:
                cpu = f", {real['server_run_cpu_s']:.0f} CPU-s" if "server_run_cpu_s" in real else ""
                lines += [
                    "",
                    f"Real FHE, {bname}, one test pair (measured): keygen {_fmt_s(real['keygen_s'])}, encrypt both "
                    f"faces {_fmt_s(real['encrypt_both_s'])}, server run {_fmt_s(real['server_run_s'])}{cpu} "
                    f"(1-min load average {real['load_average_1min_before']:.1f} before / "
                    f"{real['load_average_1min_after']:.1f} after, 2 cores), decrypt {_fmt_s(real['decrypt_s'])}; "
                    f"evaluation keys {real['eval_keys_mb']:.0f} MB, ciphertexts in "
                    f"{' + '.join(f'{k:.1f}' for k in real['ciphertext_in_kb_each'])} KB, out "
                    f"{real['ciphertext_out_kb']:.1f} KB; decrypted logit {real['fhe_logit']:.3f} vs simulated "
                    f"{real['simulated_logit']:.3f}.",
                ]
            elif "estimate" in b:
                e = b["estimate"]
                lines += [
                    "",
                    f"{bname}: **estimate**, not run in FHE here: {b['programmable_bootstrap_count']} PBS x "
                    f"{e['per_pbs_s_measured'] * 1e3:.0f} ms per PBS measured on {e['reference']} = "
                    f"{_fmt_s(e['server_run_s_by_pbs'])} (ratio of Concrete complexities instead: "
                    f"{_fmt_s(e['server_run_s_by_complexity'])}). PBS by parameter set: {b['pbs_per_parameter']}.",
                ]
        lines += [
            "",
            "Accuracy columns: clear = the trained Brevitas model on all 600 pairs of the test fold; FHE-simulated = "
            "Concrete-ML's simulation of the compiled circuit on a sample spread evenly over the fold. Training "
            "was kept to minutes of CPU on a shared 2-core machine, so these accuracies are what a small CNN "
            "learns from scratch on LFW in that budget, far below the 99% of the embedding-based systems.",
        ]
    else:
        lines.append(
            "Not run: `python -m training.benchmark_baseline --lfw-dir PATH` writes artifacts/bench/baseline.json."
        )
    lines += ["", "## 3. CKKS peer (TenSEAL)", ""]
    if ckks.get("available"):
        lines += [
            f"{ckks['library']}; N={ckks['parameters']['poly_modulus_degree']}, "
            f"moduli {ckks['parameters']['coeff_mod_bit_sizes']}, "
            f"scale 2^{ckks['parameters']['scale_bits']}, {ckks['security']}. "
            f"Keygen {_fmt_s(ckks['keygen_s'])}; public "
            f"context (relinearisation + Galois keys, sent to the server) {ckks['public_context_mb']:.1f} MB. "
            "Each embedding is encrypted on its own; the server computes (a-b).(a-b); the client decrypts and "
            "thresholds (threshold chosen on the other 9 folds). Timings: medians over the first 30 pairs. Accuracy "
            "over all 6000 pairs: decrypted CKKS scores for the pairs in column 'encrypted' (spread evenly over "
            "the folds), clear distances for the rest (the max error column shows they are interchangeable).",
            "",
            _row(
                "embedding",
                "accuracy (10-fold)",
                "same scores in clear",
                "max abs error vs clear",
                "encrypted",
                "encrypt one",
                "server",
                "decrypt",
                "ct in / out",
            ),
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for label, v in ckks["variants"].items():
            lines.append(
                f"| {label} | {_pct(v['accuracy'])} ± {100 * v['accuracy_std']:.2f} | "
                f"{_pct(v['accuracy_clear_same_scores'])} | "
                f"{v['max_abs_error_vs_clear']:.1e} | {v['n_pairs_encrypted']}/{v['n_pairs']} | "
                f"{_fmt_s(v['encrypt_one_embedding_s_median'])} | "
                f"{_fmt_s(v['server_run_s_median'])} | {_fmt_s(v['decrypt_s_median'])} | "
                f"{v['ciphertext_in_kb']:.0f} / {v['ciphertext_out_kb']:.0f} KB |"
            )
    else:
        lines.append(f"Not run: {ckks.get('why', 'skipped')}.")
    lines += ["", "## 4. Scaling", ""]
    frontier = result.get("frontier") or []
    if frontier:
        lines += [
            "FHE head against d (all 4-bit inputs; no other bit width in the frontier file). "
            f"Source: `{_rel(FRONTIER)}`.",
            "",
            "| d | accuracy (simulated, 10-fold) | server run | PBS | eval keys |",
            "|---|---|---|---|---|",
        ]
        for p in frontier:
            lines.append(
                f"| {p['dims']} | {_pct(p['accuracy_simulated'])} | {_fmt_s(p['server_run_s_median'])} | "
                f"{p['programmable_bootstrap_count']} | {p['eval_keys_mb']:.1f} MB |"
            )
    scaling = result.get("scaling") or {}
    if scaling:
        lines += [
            "",
            "Against d and input bit width, one fixed configuration (not re-tuned per cell; "
            f"{scaling['protocol']}). Source: `artifacts/bench/scaling.json` (`python -m training.bench_scaling`).",
            "",
            "| d | input bits | accuracy (clear integer, 10-fold) | server run | PBS | max bits | poly | eval keys |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in scaling["rows"]:
            lines.append(
                f"| {r['dims']} | {r['n_bits']} | {_pct(r['accuracy_clear_integer'])} | "
                f"{_fmt_s(r['server_run_s_median'])} | {r['programmable_bootstrap_count']} | {r['max_bit_width']} | "
                f"{'/'.join(str(x) for x in r['polynomial_sizes'])} | {r['eval_keys_mb']:.0f} MB |"
            )
    one = result.get("one_to_n") or {}
    if one:
        lines += [
            "",
            "1:N identification (one probe against N enrolled templates, sequential server runs + decrypts):",
            "",
            "| point | d | " + " | ".join(f"N={r['n']}" for r in next(iter(one.values()))["rows"]) + " | how |",
            "|---|---|" + "---|" * (len(next(iter(one.values()))["rows"]) + 1),
        ]
        for name, v in one.items():
            lines.append(
                f"| {name} | {v['dims']} | "
                + " | ".join(_fmt_s(r["latency_s"]) for r in v["rows"])
                + f" | {v['kind']} |"
            )
    lines += [
        "",
        "Plots: `frontier.png` (accuracy vs server latency, all systems), `latency_vs_dims.png`, `one_to_n.png`.",
        "",
    ]
    return "\n".join(lines)


def plot(result: dict, out_dir: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    label = machine_label(result["machine"])
    written = []
    fig, ax = plt.subplots(figsize=(6, 4))
    fr = result.get("frontier") or []
    if fr:
        ax.plot(
            [p["server_run_s_median"] for p in fr],
            [100 * p["accuracy_simulated"] for p in fr],
            "o-",
            label="FHE head (d)",
        )
        for p in fr:
            ax.annotate(f"d={p['dims']}", (p["server_run_s_median"], 100 * p["accuracy_simulated"]), fontsize=7)
    for name, h in result["head"]["points"].items():
        if h.get("accuracy_simulated") is not None:
            ax.plot(h["cost"]["server_run_s_median"], 100 * h["accuracy_simulated"], "s", label=f"head '{name}'")
    ckks = result.get("ckks") or {}
    for lab, v in ckks.get("variants", {}).items():
        ax.plot(v["server_run_s_median"], 100 * v["accuracy"], "^", label=f"CKKS {lab} (score)")
    for bname, b in (result.get("baseline") or {}).get("variants", {}).items():
        real = b.get("real_fhe_one_pair")
        lat = real["server_run_s"] if real else b.get("estimate", {}).get("server_run_s_by_pbs")
        if lat:
            ax.plot(
                lat,
                100 * b["accuracy_simulated"],
                "x" if real else "D",
                ms=8,
                label=f"full-image {bname} ({'measured' if real else 'estimate'}, 1 fold)",
            )
    ax.set_xscale("log")
    ax.set_xlabel("server latency per pair (s, log)")
    ax.set_ylabel("LFW accuracy (%)")
    ax.set_title(f"Accuracy vs latency\n{label}", fontsize=9)
    ax.legend(fontsize=6)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out_dir / "frontier.png", dpi=90)
    plt.close(fig)
    written.append("frontier.png")
    if fr:
        fig, ax = plt.subplots(figsize=(5, 3.5))
        ax.plot([p["dims"] for p in fr], [p["server_run_s_median"] for p in fr], "o-", label="server run")
        ax2 = ax.twinx()
        ax2.plot(
            [p["dims"] for p in fr], [100 * p["accuracy_simulated"] for p in fr], "s--", color="C1", label="accuracy"
        )
        ax.set_xlabel("embedding dimension d (4-bit)")
        ax.set_ylabel("server run (s)")
        ax2.set_ylabel("LFW accuracy (%)", color="C1")
        ax.set_title(f"FHE head vs d\n{label}", fontsize=9)
        fig.tight_layout()
        fig.savefig(out_dir / "latency_vs_dims.png", dpi=90)
        plt.close(fig)
        written.append("latency_vs_dims.png")
    one = result.get("one_to_n") or {}
    if one:
        fig, ax = plt.subplots(figsize=(5, 3.5))
        for name, v in one.items():
            style = "o-" if v["kind"].startswith("measured") else "o--"
            ax.plot(
                [r["n"] for r in v["rows"]],
                [r["latency_s"] for r in v["rows"]],
                style,
                label=f"{name} d={v['dims']} ({v['kind'].split(':')[0]})",
            )
        ax.set_xlabel("gallery size N")
        ax.set_ylabel("1:N latency (s)")
        ax.set_title(f"1:N identification, sequential\n{label}", fontsize=9)
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(out_dir / "one_to_n.png", dpi=90)
        plt.close(fig)
        written.append("one_to_n.png")
    return written


def write_outputs(result: dict, out_dir: Path, plots: bool = True) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    result["headline"] = headline(result)
    (out_dir / "benchmark.json").write_text(json.dumps(result, indent=2, default=float) + "\n")
    (out_dir / "benchmark.md").write_text(write_markdown(result))
    paths = [out_dir / "benchmark.json", out_dir / "benchmark.md"]
    if plots:
        paths += [out_dir / p for p in plot(result, out_dir)]
    return paths


def main(argv: list[str] | None = None) -> int:
    from training.lfw import open_lfw_for_cli

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lfw-dir", default=None, help="LFW root (default: $LFW_DIR)")
    parser.add_argument("--out-dir", type=Path, default=BENCH_DIR)
    parser.add_argument("--skip-ckks", action="store_true")
    parser.add_argument("--skip-one-to-n", action="store_true")
    parser.add_argument(
        "--ckks-pairs", type=int, default=600, help="pairs run through CKKS (others scored in clear); 0 = all 6000"
    )
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="re-read OUT_DIR/benchmark.json (head, CKKS, 1:N) and the current baseline.json; rewrite Markdown/plots",
    )
    args = parser.parse_args(argv)
    if args.report_only:
        result = json.loads((args.out_dir / "benchmark.json").read_text())
        result["baseline"] = load_baselines()
        result["scaling"] = _read(BENCH_DIR / "scaling.json")
        for path in write_outputs(result, args.out_dir):
            print(f"wrote {_rel(path)}")
        return 0
    lfw = open_lfw_for_cli(args.lfw_dir)
    result: dict = {
        "machine": machine(),
        "generated": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "load_average_1min_at_start": os.getloadavg()[0],
    }
    print("FHE head ...", flush=True)
    result["head"] = head_section()
    frontier = _read(FRONTIER)
    result["frontier"] = [
        {
            k: p[k]
            for k in (
                "name",
                "dims",
                "n_bits",
                "accuracy_simulated",
                "server_run_s_median",
                "programmable_bootstrap_count",
                "eval_keys_mb",
            )
        }
        for p in (frontier or {}).get("points", [])
    ]
    result["baseline"] = load_baselines()
    result["scaling"] = _read(BENCH_DIR / "scaling.json")
    result["ckks"] = (
        {"available": False, "why": "skipped (--skip-ckks)"}
        if args.skip_ckks
        else ckks_section(lfw, encrypted_pairs=args.ckks_pairs or None)
    )
    if not args.skip_one_to_n:
        print("1:N ...", flush=True)
        result["one_to_n"] = one_to_n()
    result["load_average_1min_at_end"] = os.getloadavg()[0]
    for path in write_outputs(result, args.out_dir):
        print(f"wrote {_rel(path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
