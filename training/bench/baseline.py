"""Full-image FHE baseline for the benchmark: a small siamese CNN over two aligned face crops, in TFHE.

    python -m training.benchmark_baseline --lfw-dir PATH [--variants small big] [--epochs 6] [--out FILE]

Why: the FHE head runs only a few dozen bootstraps because the face network runs in clear on the
client. The usual alternative runs the whole verification network on encrypted pixels. This
module measures what that costs on the same machine, with Concrete-ML (the library the head's
compiler comes from):

1. Crops: for every LFW View 2 image, the client encoder's detector and aligner cut the same
   150x150 chip the embedding network sees; it is turned grey and shrunk to `size` x `size`.
   Cached as .npz under the user cache (~/.cache/privface/), never in the repository.
2. Model: a VGG-style Brevitas CNN (3x3 convolutions, ReLU, 2x2 average pooling, low-bit weights
   and activations) shared by both faces, |f(a) - f(b)| and a linear layer -> one logit
   ("same person" when > 0). Each face is a separate encrypted input, as in the head.
3. Protocol: trained on 9 View 2 folds (their pairs plus extra pairs drawn from the training
   folds' images; View 2 folds are person-disjoint), tested on the held-out fold (one fold only,
   for time). Accuracy on that fold: clear float, and Concrete's FHE simulation of the compiled
   circuit.
4. Cost: PBS count, bit widths and, for the model small enough to finish here, real FHE
   latency of one pair (keygen, encrypt, run, decrypt, sizes). For a model too slow to run here,
   latency is estimated as its PBS count x the per-PBS time measured on the real run (labelled).

Results -> artifacts/bench/baseline.json (read by `python -m training.benchmark`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from client_encoder.models import cache_dir
from privface.resources import artifacts_dir
from training.lfw import LFW, Pair, open_lfw_for_cli, unique_images

BENCH_DIR = artifacts_dir() / "bench"
CROP_VERSION = "chip=150/0.25;grey=PIL-L;resize=PIL-box;v1"


# ---- crops ---------------------------------------------------------------------------------------
def crops_cache_path(lfw: LFW, size: int) -> Path:
    key = hashlib.sha256(f"{lfw.root.resolve()}|{size}|{CROP_VERSION}".encode()).hexdigest()[:12]
    return cache_dir() / f"lfw_crops_{size}_{key}.npz"


def _crop_one(encoder, path: Path, size: int) -> tuple[np.ndarray, str]:
    from PIL import Image

    # Same no-face policy as the embedding cache: landmarks on LFW's central box, counted.
    located = encoder.locate(path, no_face="centre-box", tta="none")
    chip = Image.fromarray(located.chip).convert("L").resize((size, size), Image.Resampling.BOX)
    return np.asarray(chip, dtype=np.uint8), located.detector


def load_crops(lfw: LFW, size: int = 32, progress: bool = True) -> dict[Path, np.ndarray]:
    """Grey aligned crops of every View 2 image, {path: (size, size) uint8}, cached as .npz."""
    from tqdm import tqdm

    path = crops_cache_path(lfw, size)
    images = unique_images(lfw.view2())
    if path.is_file():
        data = np.load(path)
        names = [str(p) for p in data["paths"]]
        if set(names) >= {str(p) for p in images}:
            return dict(zip((Path(n) for n in names), data["crops"], strict=True))
    from client_encoder.encoder import FaceEncoder

    encoder = FaceEncoder(tta="none")
    crops, how = [], []
    for image in tqdm(images, desc=f"crops {size}x{size}", unit="img", disable=not progress, mininterval=5):
        crop, detector_used = _crop_one(encoder, image, size)
        crops.append(crop)
        how.append(detector_used)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, paths=np.array([str(p) for p in images]), crops=np.stack(crops), detector=np.array(how))
    tmp.replace(path)
    return dict(zip(images, crops, strict=True))


def shrink(crops: np.ndarray, size: int) -> np.ndarray:
    """(n, S, S) -> (n, size, size) by block averaging (S a multiple of size)."""
    factor = crops.shape[-1] // size
    if factor == 1:
        return crops
    n, s = crops.shape[0], crops.shape[-1]
    return crops.reshape(n, s // factor, factor, s // factor, factor).mean(axis=(2, 4))


# ---- model ---------------------------------------------------------------------------------------
def build_model(
    size: int = 32,
    channels: tuple[int, ...] = (8, 16, 32),
    bits: int = 3,
    input_bits: int = 4,
    emb: int = 32,
    combine: str = "concat",
):
    """Siamese VGG-style Brevitas CNN: forward(a, b) -> (n, 1) logit, > 0 means same person."""
    import brevitas.nn as qnn
    import torch
    from torch import nn

    class Tower(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            layers: list[nn.Module] = [qnn.QuantIdentity(bit_width=input_bits)]
            c_in, side = 1, size
            for c_out in channels:
                layers += [
                    qnn.QuantConv2d(c_in, c_out, 3, padding=1, weight_bit_width=bits, bias=True),
                    nn.BatchNorm2d(c_out),
                    qnn.QuantReLU(bit_width=bits),
                    nn.AvgPool2d(2),
                    qnn.QuantIdentity(bit_width=bits),
                ]
                c_in, side = c_out, side // 2
            layers += [nn.Flatten(), qnn.QuantLinear(c_in * side * side, emb, weight_bit_width=bits, bias=True)]
            layers += [qnn.QuantIdentity(bit_width=bits + 1)]
            self.body = nn.Sequential(*layers)

        def forward(self, x):
            return self.body(x)

    class Siamese(nn.Module):
        """Shared tower; "absdiff": |f(a) - f(b)| -> linear; "concat": [f(a), f(b)] -> MLP."""

        def __init__(self) -> None:
            super().__init__()
            self.tower = Tower()
            if combine == "absdiff":
                self.combine_quant = qnn.QuantIdentity(bit_width=bits + 1)
                self.head = qnn.QuantLinear(emb, 1, weight_bit_width=bits, bias=True)
            else:
                self.head = nn.Sequential(
                    qnn.QuantLinear(2 * emb, emb, weight_bit_width=bits, bias=True),
                    qnn.QuantReLU(bit_width=bits),
                    qnn.QuantLinear(emb, 1, weight_bit_width=bits, bias=True),
                )

        def forward(self, a, b):
            fa, fb = self.tower(a), self.tower(b)
            if combine == "absdiff":
                return self.head(self.combine_quant(torch.abs(fa - fb)))
            return self.head(torch.cat([fa, fb], dim=1))

    return Siamese()


def normalise(crops: np.ndarray) -> np.ndarray:
    """Per-crop standardisation (client side, in clear): (n, S, S) uint8 -> (n, 1, S, S) float32."""
    x = crops.astype(np.float32)
    x = (x - x.mean(axis=(1, 2), keepdims=True)) / (x.std(axis=(1, 2), keepdims=True) + 1e-3)
    return x[:, None]


def _identity(path: Path) -> str:
    return path.parent.name


def training_pairs(pairs: list[Pair], rng: np.random.Generator, extra: int) -> list[tuple[Path, Path, bool]]:
    """The training folds' pairs plus `extra` random pairs (half same, half different) of their images."""
    out = [(p.left, p.right, p.same) for p in pairs]
    by_person: dict[str, list[Path]] = {}
    for image in unique_images(pairs):
        by_person.setdefault(_identity(image), []).append(image)
    people = list(by_person)
    multi = [p for p in people if len(by_person[p]) > 1]
    for i in range(extra):
        if i % 2 == 0 and multi:
            left, right = rng.choice(by_person[multi[rng.integers(len(multi))]], 2, replace=False)
            out.append((left, right, True))
        else:
            a, b = rng.choice(len(people), 2, replace=False)
            out.append((rng.choice(by_person[people[a]]), rng.choice(by_person[people[b]]), False))
    return out


def stack(crops: dict[Path, np.ndarray], pairs, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    a = normalise(shrink(np.stack([crops[p[0]] for p in pairs]).astype(np.float32), size))
    b = normalise(shrink(np.stack([crops[p[1]] for p in pairs]).astype(np.float32), size))
    return a, b, np.array([p[2] for p in pairs], dtype=np.float32)


def train(
    model, a: np.ndarray, b: np.ndarray, y: np.ndarray, epochs: int, seed: int = 0, log=print, lr: float = 5e-3
) -> None:
    """Short QAT run: Adam, cosine schedule, random flips and a random order of the two faces."""
    import torch

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    batches = int(np.ceil(len(y) / 128))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * batches)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    start = time.perf_counter()
    for epoch in range(epochs):
        model.train()
        order, total = rng.permutation(len(y)), 0.0
        for i in range(batches):
            idx = order[i * 128 : (i + 1) * 128]
            xa, xb = a[idx].copy(), b[idx].copy()
            flip_a, flip_b = rng.random(len(idx)) < 0.5, rng.random(len(idx)) < 0.5
            xa[flip_a], xb[flip_b] = xa[flip_a][..., ::-1], xb[flip_b][..., ::-1]
            swap = rng.random(len(idx)) < 0.5
            xa[swap], xb[swap] = xb[swap], xa[swap].copy()
            logit = model(torch.from_numpy(xa), torch.from_numpy(xb))[:, 0]
            loss = loss_fn(logit, torch.from_numpy(y[idx]))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss) * len(idx)
        log(f"  epoch {epoch + 1}/{epochs}: loss {total / len(y):.4f} ({time.perf_counter() - start:.0f} s)")


def logits(model, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    import torch

    model.eval()
    with torch.no_grad():
        return np.concatenate(
            [
                model(torch.from_numpy(a[i : i + 512]), torch.from_numpy(b[i : i + 512]))[:, 0].numpy()
                for i in range(0, len(a), 512)
            ]
        )


def circuit_stats(circuit) -> dict:
    per_param = {str(k): int(v) for k, v in circuit.programmable_bootstrap_count_per_parameter.items()}
    stats = circuit.statistics
    # Concrete's PBS statistic, and as a cross-check the number of lookup elements in the graph
    # (approximate rounding nodes excluded: they are fused into the next lookup).
    lookups = [
        n
        for n in circuit.graph.query_nodes()
        if n.converted_to_table_lookup and "round_bit_pattern" not in n.format(["x"] * len(n.inputs))
    ]
    return {
        "programmable_bootstrap_count": int(circuit.programmable_bootstrap_count),
        "table_lookup_elements_in_graph": int(sum(int(np.prod(n.output.shape)) for n in lookups)),
        "table_lookup_nodes": len(lookups),
        "pbs_per_parameter": per_param,
        "complexity": float(circuit.complexity),
        "global_p_error": float(circuit.global_p_error),
        "p_error": float(circuit.p_error),
        "size_of_bootstrap_keys_mb": float(circuit.size_of_bootstrap_keys) / 1e6,
        "size_of_keyswitch_keys_mb": float(circuit.size_of_keyswitch_keys) / 1e6,
        "size_of_inputs_kb": float(circuit.size_of_inputs) / 1e3,
        "size_of_outputs_kb": float(circuit.size_of_outputs) / 1e3,
        "max_bit_width": int(circuit.graph.maximum_integer_bit_width()),
        "key_switch_count": int(stats.get("key_switch_count", 0)),
    }


def compile_model(model, a: np.ndarray, b: np.ndarray, rounding_bits: int, global_p_error: float):
    import torch
    from concrete.ml.torch.compile import compile_brevitas_qat_model

    model.eval()
    return compile_brevitas_qat_model(
        model,
        (torch.from_numpy(a), torch.from_numpy(b)),
        rounding_threshold_bits={"n_bits": rounding_bits, "method": "approximate"},
        global_p_error=global_p_error,
    )


def simulated_logits(qmodule, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.concatenate(
        [np.asarray(qmodule.forward(a[i : i + 50], b[i : i + 50], fhe="simulate"))[:, 0] for i in range(0, len(a), 50)]
    )


def real_fhe_one_pair(qmodule, a: np.ndarray, b: np.ndarray) -> dict:
    """Keygen, encryption of each face, the server run, decryption: one pair, real TFHE."""
    circuit = qmodule.fhe_circuit
    t0 = time.perf_counter()
    circuit.keygen(force=True)
    keygen_s = time.perf_counter() - t0
    qa, qb = qmodule.quantize_input(a, b)
    t0 = time.perf_counter()
    enc = circuit.encrypt(qa, qb)
    encrypt_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    load_before = os.getloadavg()[0]
    cpu0 = time.process_time()
    out = circuit.run(*enc)
    run_s = time.perf_counter() - t0
    run_cpu_s = time.process_time() - cpu0
    t0 = time.perf_counter()
    q_out = circuit.decrypt(out)
    decrypt_s = time.perf_counter() - t0
    value = float(np.asarray(qmodule.dequantize_output(np.asarray(q_out)))[0, 0])
    simulated = float(np.asarray(qmodule.forward(a, b, fhe="simulate"))[0, 0])
    return {
        "keygen_s": keygen_s,
        "encrypt_both_s": encrypt_s,
        "server_run_s": run_s,
        "server_run_cpu_s": run_cpu_s,
        "decrypt_s": decrypt_s,
        "eval_keys_mb": len(circuit.keys.evaluation.serialize()) / 1e6,
        "ciphertext_in_kb_each": [len(e.serialize()) / 1e3 for e in enc],
        "ciphertext_out_kb": len(out.serialize()) / 1e3,
        "load_average_1min_before": load_before,
        "load_average_1min_after": os.getloadavg()[0],
        "fhe_logit": value,
        "simulated_logit": simulated,
    }


def simulate_fold(qmodule, clear: np.ndarray, ta, tb, ty, t: float, n: int) -> dict:
    """FHE-simulated accuracy on `n` test pairs spread over the fold (LFW lists a fold's 300
    same-person pairs before its 300 different ones), beside the clear model on the same pairs."""
    pick = np.linspace(0, len(ta) - 1, min(len(ta), n)).astype(int)
    t0 = time.perf_counter()
    sim = simulated_logits(qmodule, ta[pick], tb[pick])
    same = ty[pick].astype(bool)
    return {
        "accuracy_simulated": float(np.mean((-sim < t) == same)),
        "simulated_pairs": len(pick),
        "simulated_same_pairs": int(same.sum()),
        "accuracy_clear_fake_quant_on_simulated_pairs": float(np.mean((-clear[pick] < t) == same)),
        "simulation_s": time.perf_counter() - t0,
    }


def resimulate(path: Path, crops, train_pairs, test, args, log) -> None:
    """Recompile saved models of `path`'s variants (same weights, same calibration) and redo the simulation."""
    import torch

    report = json.loads(path.read_text())
    for name, v in report["variants"].items():
        model = build_model(v["size"], tuple(v["channels"]), bits=v["weight_activation_bits"])
        model.load_state_dict(torch.load(cache_dir() / f"bench_baseline_{name}.pt"))
        a, b, _ = stack(crops, train_pairs, v["size"])
        ta, tb, ty = stack(crops, test, v["size"])
        t = -v["threshold_on_logit"]
        clear = logits(model, ta, tb)
        calib = np.random.default_rng(1).choice(len(a), min(len(a), args.calibration), replace=False)
        qmodule = compile_model(model, a[calib], b[calib], args.rounding_bits, args.global_p_error)
        v.update(simulate_fold(qmodule, clear, ta, tb, ty, t, args.simulate_pairs))
        v["accuracy_clear_fake_quant"] = float(np.mean((-clear < t) == ty.astype(bool)))
        v["programmable_bootstrap_count_recompiled"] = circuit_stats(qmodule.fhe_circuit)[
            "programmable_bootstrap_count"
        ]
        log(f"[{name}] re-simulated: {v['accuracy_simulated']:.4f} on {v['simulated_pairs']} pairs")
        path.write_text(json.dumps(report, indent=2) + "\n")
        if args.rerun_real and name.startswith("small"):
            v["real_fhe_one_pair"] = real_fhe_one_pair(qmodule, ta[:1], tb[:1])
            log(f"[{name}] real FHE: {v['real_fhe_one_pair']}")
        path.write_text(json.dumps(report, indent=2) + "\n")


def run_variant(
    name: str, crops, train_pairs, test_pairs, size: int, channels, bits: int, epochs: int, args, log
) -> tuple[dict, object]:
    import torch

    from training.protocol import best_threshold

    log(f"[{name}] {size}x{size}, channels {channels}, {bits}-bit weights/activations")
    a, b, y = stack(crops, train_pairs, size)
    ta, tb, ty = stack(crops, test_pairs, size)
    model = build_model(size, tuple(channels), bits=bits)
    t0 = time.perf_counter()
    train(model, a, b, y, epochs, log=log)
    train_s = time.perf_counter() - t0
    # Threshold on the logit chosen on training-fold pairs ("same" iff -logit < t).
    n_view2 = args.n_view2_train
    t = best_threshold(-logits(model, a[:n_view2], b[:n_view2]), y[:n_view2].astype(bool))
    clear = logits(model, ta, tb)
    acc_clear = float(np.mean((-clear < t) == ty.astype(bool)))
    log(f"[{name}] trained in {train_s:.0f} s; clear (fake-quant) test accuracy {acc_clear:.4f}")
    torch.save(model.state_dict(), cache_dir() / f"bench_baseline_{name}.pt")
    calib = np.random.default_rng(1).choice(len(a), min(len(a), args.calibration), replace=False)
    t0 = time.perf_counter()
    qmodule = compile_model(model, a[calib], b[calib], args.rounding_bits, args.global_p_error)
    compile_s = time.perf_counter() - t0
    stats = circuit_stats(qmodule.fhe_circuit)
    pbs = stats["programmable_bootstrap_count"]
    log(f"[{name}] compiled in {compile_s:.0f} s: {pbs} PBS, {stats['pbs_per_parameter']}")
    sim_fields = simulate_fold(qmodule, clear, ta, tb, ty, t, args.simulate_pairs)
    log(f"[{name}] simulated accuracy {sim_fields['accuracy_simulated']:.4f} on {sim_fields['simulated_pairs']} pairs")
    n_params = int(sum(p.numel() for p in model.parameters()))
    return {
        "name": name,
        "input": f"2 x {size}x{size} grey aligned crops, each face a separate encrypted input",
        "size": size,
        "channels": list(channels),
        "weight_activation_bits": bits,
        "input_bits": 4,
        "parameters": n_params,
        "epochs": epochs,
        "train_pairs": len(train_pairs),
        "train_s": train_s,
        "threshold_on_logit": -t,
        "accuracy_clear_fake_quant": acc_clear,
        **sim_fields,
        "compile_s": compile_s,
        "rounding_threshold_bits": {"n_bits": args.rounding_bits, "method": "approximate"},
        "global_p_error_requested": args.global_p_error,
        **stats,
    }, (qmodule, ta[:1], tb[:1])


def add_estimates(variants: dict) -> None:
    """For each variant not run in real FHE: its latency estimated from one that was (labelled)."""
    measured = [v for v in variants.values() if "real_fhe_one_pair" in v]
    if not measured:
        return
    ref = measured[0]
    run_s = ref["real_fhe_one_pair"]["server_run_s"]
    for v in variants.values():
        if "real_fhe_one_pair" in v:
            continue
        v["estimate"] = {
            "label": f"estimate (not run in FHE): {ref['name']}'s measured run time scaled by the ratio of PBS "
            "counts (and, as a check, of Concrete's complexity figures)",
            "reference": ref["name"],
            "per_pbs_s_measured": run_s / ref["programmable_bootstrap_count"],
            "server_run_s_by_pbs": run_s * v["programmable_bootstrap_count"] / ref["programmable_bootstrap_count"],
            "server_run_s_by_complexity": run_s * v["complexity"] / ref["complexity"],
        }


def main(argv: list[str] | None = None) -> int:
    import torch

    from training.bench_encoder import _cpu_name

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lfw-dir", default=None, help="LFW root (default: $LFW_DIR)")
    parser.add_argument("--crops-only", action="store_true", help="build the crop cache and stop")
    parser.add_argument("--test-fold", type=int, default=9, help="held-out View 2 fold (0-9; default the 10th)")
    parser.add_argument("--size", type=int, default=32, help="crop side of the big model (estimated if too slow)")
    parser.add_argument("--channels", type=int, nargs="+", default=[8, 16, 32])
    parser.add_argument("--real-size", type=int, default=16, help="crop side of the small model run in real FHE")
    parser.add_argument("--real-channels", type=int, nargs="+", default=[2, 4, 8])
    parser.add_argument("--bits", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--extra-pairs", type=int, default=6000, help="random training pairs added to the 5400")
    parser.add_argument("--rounding-bits", type=int, default=6)
    parser.add_argument("--global-p-error", type=float, default=1e-5)
    parser.add_argument("--calibration", type=int, default=300)
    parser.add_argument("--simulate-pairs", type=int, default=300)
    parser.add_argument("--real-big", action="store_true", help="also run the big model in real FHE (slow)")
    parser.add_argument("--resimulate", action="store_true", help="redo the simulation of --out's saved models")
    parser.add_argument("--rerun-real", action="store_true", help="with --resimulate: the small model's FHE run too")
    parser.add_argument("--variants", nargs="+", choices=("small", "big"), default=["small", "big"])
    parser.add_argument("--out", type=Path, default=BENCH_DIR / "baseline.json", help="(several runs: baseline_*.json)")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    lfw = open_lfw_for_cli(args.lfw_dir)
    start = time.perf_counter()
    crops = load_crops(lfw, 32)
    print(f"{len(crops)} crops in {time.perf_counter() - start:.1f} s -> {crops_cache_path(lfw, 32)}", flush=True)
    if args.crops_only:
        return 0
    pairs = lfw.view2()
    train_view2 = [p for p in pairs if p.fold != args.test_fold]
    test = [(p.left, p.right, p.same) for p in pairs if p.fold == args.test_fold]
    args.n_view2_train = len(train_view2)
    train_pairs = training_pairs(train_view2, np.random.default_rng(0), args.extra_pairs)

    def log(msg: str) -> None:
        print(msg, flush=True)

    if args.resimulate:
        resimulate(args.out, crops, train_pairs, test, args, log)
        return 0

    report: dict = {
        "machine": {"cpu": _cpu_name(), "cores": os.cpu_count()},
        "protocol": (
            f"LFW View 2: trained on folds != {args.test_fold} (their 5400 pairs + {args.extra_pairs} random pairs "
            f"of their images; folds are person-disjoint), tested on fold {args.test_fold} only (600 pairs) - "
            "one fold, not the 10-fold mean, for time"
        ),
        "concrete_ml": __import__("concrete.ml", fromlist=["__version__"]).__version__,
        "variants": {},
    }
    real_name = f"small_{args.real_size}"
    big_name = f"big_{args.size}"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if "small" in args.variants:
        small, (small_q, sa, sb) = run_variant(
            real_name, crops, train_pairs, test, args.real_size, args.real_channels, args.bits, args.epochs, args, log
        )
        log(f"[{real_name}] real FHE, one pair ...")
        small["real_fhe_one_pair"] = real_fhe_one_pair(small_q, sa, sb)
        log(f"[{real_name}] {small['real_fhe_one_pair']}")
        report["variants"][real_name] = small
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    if "big" in args.variants:
        big, (big_q, ba, bb) = run_variant(
            big_name, crops, train_pairs, test, args.size, args.channels, args.bits, args.epochs, args, log
        )
        if args.real_big:
            log(f"[{big_name}] real FHE, one pair ...")
            big["real_fhe_one_pair"] = real_fhe_one_pair(big_q, ba, bb)
        report["variants"][big_name] = big
        add_estimates(report["variants"])
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
