"""Full-image FHE baseline for the benchmark: a small siamese CNN over two aligned face crops, in TFHE.

    python -m training.bench.baseline --lfw-dir PATH [--variants small big] [--epochs 6] [--out FILE]

Why: the FHE head runs only a few dozen bootstraps because the face network runs in clear on the
client. The usual alternative runs the whole verification network on encrypted pixels. This
module measures what that costs on the same machine, with Concrete-ML (the library the head's
compiler comes from):

1. Crops: for every LFW View 2 image, the client encoder's detector and aligner cut the same
   150x150 chip the embedding network sees; it is turned grey and shrunk to `size` x `size`.
   Cached as .npz under the user cache (~/.cache/privface/), never in the repository.
2. Model (`training.bench.fullimage`): a VGG-style Brevitas CNN shared by both faces -> one logit
   ("same person" when > 0). Each face is a separate encrypted input, as in the head.
3. Protocol: trained on 9 View 2 folds (their pairs plus extra pairs drawn from the training
   folds' images; View 2 folds are person-disjoint), tested on the held-out fold (one fold only,
   for time). Accuracy on that fold: clear float, and Concrete's FHE simulation of the compiled
   circuit.
4. Cost: PBS count, bit widths and, for the model small enough to finish here, real FHE
   latency of one pair (keygen, encrypt, run, decrypt, sizes). For a model too slow to run here,
   latency is estimated as its PBS count x the per-PBS time measured on the real run (labelled).

Results -> artifacts/bench/baseline.json (read by `python -m training.bench.benchmark`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np

from client_encoder.models import cache_dir
from training.bench.fullimage import (
    add_estimates,
    build_model,
    circuit_stats,
    compile_model,
    logits,
    normalise,
    real_fhe_one_pair,
    shrink,
    simulate_fold,
    train,
)
from training.lfw import LFW, Pair, open_lfw_for_cli, unique_images
from training.machine import machine_info
from training.paths import BENCH_DIR

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

    encoder = FaceEncoder(tta="none", encoder="dlib")
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


# ---- protocol ------------------------------------------------------------------------------------
def compile_calibrated(model, a: np.ndarray, b: np.ndarray, args: argparse.Namespace):
    """Compiled with a fixed random sample of the training pairs as calibration set."""
    calib = np.random.default_rng(1).choice(len(a), min(len(a), args.calibration), replace=False)
    return compile_model(model, a[calib], b[calib], args.rounding_bits, args.global_p_error)


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
        qmodule = compile_calibrated(model, a, b, args)
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
    t0 = time.perf_counter()
    qmodule = compile_calibrated(model, a, b, args)
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


def parse_args(argv: list[str] | None) -> argparse.Namespace:
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
    return parser.parse_args(argv)


def log(msg: str) -> None:
    print(msg, flush=True)


def run_variants(args: argparse.Namespace, crops, train_pairs, test) -> None:
    """The small model (run in real FHE) and the big one (estimated unless --real-big), saved as they finish."""
    report: dict = {
        "machine": machine_info(),
        "protocol": (
            f"LFW View 2: trained on folds != {args.test_fold} (their 5400 pairs + {args.extra_pairs} random pairs "
            f"of their images; folds are person-disjoint), tested on fold {args.test_fold} only (600 pairs) - "
            "one fold, not the 10-fold mean, for time"
        ),
        "concrete_ml": __import__("concrete.ml", fromlist=["__version__"]).__version__,
        "variants": {},
    }
    common = (crops, train_pairs, test)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for kind, size, channels, real in (
        ("small", args.real_size, args.real_channels, True),
        ("big", args.size, args.channels, args.real_big),
    ):
        if kind not in args.variants:
            continue
        name = f"{kind}_{size}"
        variant, (qmodule, a, b) = run_variant(name, *common, size, channels, args.bits, args.epochs, args, log)
        if real:
            log(f"[{name}] real FHE, one pair ...")
            variant["real_fhe_one_pair"] = real_fhe_one_pair(qmodule, a, b)
            log(f"[{name}] {variant['real_fhe_one_pair']}")
        report["variants"][name] = variant
        if kind == "big":
            add_estimates(report["variants"])
        args.out.write_text(json.dumps(report, indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    import torch

    args = parse_args(argv)
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
    if args.resimulate:
        resimulate(args.out, crops, train_pairs, test, args, log)
        return 0
    run_variants(args, crops, train_pairs, test)
    log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
