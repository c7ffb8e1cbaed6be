"""Real FHE execution of the head over LFW View 2 (10 folds), resumable.

    python -m training.eval_fhe --lfw-dir PATH [--point accurate] [--pairs-per-fold N]

For each test fold the head is fitted on the other 9 folds (exactly as `train_head` does),
compiled into deployable artifacts, and driven through the deployment classes: `FHEClient`
generates keys and encrypts each face's embedding on its own, `FHEServer` runs the circuit on
(template, probe, evaluation keys), the client decrypts the bit. Every decision is appended to a
checkpoint file (and copied to artifacts/metrics/eval_fhe/<run>.jsonl when a report is written),
so an interrupted run resumes where it stopped, even on another machine. Results:
artifacts/metrics/lfw_fhe.json (fhe_accuracy, per fold, clear / simulated figures, disagreements).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from client_encoder.encoder import FaceEncoder
from client_encoder.models import cache_dir
from fhe_head.client import FHEClient
from fhe_head.dev import DEFAULT_GLOBAL_P_ERROR, PARAMETER_STRATEGY, compile_head, save_artifacts
from fhe_head.server import FHEServer
from privface.resources import artifacts_dir
from training.embeddings import embed_images
from training.head_fit import HeadConfig, fit_head
from training.lfw import open_lfw_for_cli, unique_images
from training.protocol import ten_fold
from training.train_head import PairData

RESULTS_DIR = artifacts_dir() / "metrics" / "eval_fhe"


def _shipped_config(point: str) -> HeadConfig:
    meta = json.loads((artifacts_dir() / "fhe_head" / point / "meta.json").read_text())
    return HeadConfig(**meta["config"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lfw-dir", help="LFW root (default: $LFW_DIR); use the original release")
    parser.add_argument("--point", default="accurate", help="shipped point whose configuration is evaluated")
    parser.add_argument(
        "--pairs-per-fold", type=int, default=600, help="N pairs of each fold, half same, half different (600 = all)"
    )
    parser.add_argument("--out", type=Path, help="default: artifacts/metrics/lfw_fhe.json (lfw_fhe_<point>.json)")
    parser.add_argument(
        "--report-only", action="store_true", help="write the report from the pairs done so far, run nothing"
    )
    args = parser.parse_args(argv)
    suffix = "" if args.point == "accurate" else f"_{args.point}"
    args.out = args.out or artifacts_dir() / "metrics" / f"lfw_fhe{suffix}.json"
    lfw = open_lfw_for_cli(args.lfw_dir)

    config = _shipped_config(args.point)
    view2 = lfw.view2()
    encoder = FaceEncoder(tta="jitter")
    data = PairData(embed_images(unique_images(view2), encoder, desc=f"LFW {lfw.variant()}"))
    # Everything that decides the circuits and their keys names the run: a change starts a new one.
    compiled_with = {"parameter_selection_strategy": PARAMETER_STRATEGY.value, "global_p_error": DEFAULT_GLOBAL_P_ERROR}
    run_key = hashlib.sha256(
        json.dumps([config.to_dict(), encoder.model_sha256, lfw.variant(), compiled_with]).encode()
    ).hexdigest()
    work = cache_dir() / "eval_fhe" / run_key[:16]
    work.mkdir(parents=True, exist_ok=True)
    checkpoint = work / "decisions.jsonl"
    # The decisions also live in the repository (small: ~100 bytes a pair), so a run of several
    # hours survives a lost cache or a fresh machine: both are read, the union is kept.
    committed = RESULTS_DIR / f"{run_key[:16]}.jsonl"
    done = {}
    for path in (committed, checkpoint):
        if path.is_file():
            for line in path.read_text().splitlines():
                if line.strip():
                    record = json.loads(line)
                    done[record["pair"]] = record

    a_all, b_all, same_all, _ = data.arrays(view2)
    half = args.pairs_per_fold // 2  # as many same-person as different-person pairs per fold
    selected = [i for i, p in enumerate(view2) if (i - 600 * p.fold) % 300 < half]
    with checkpoint.open("a") as log, tqdm(total=len(selected), initial=sum(i in done for i in selected)) as bar:
        for fold in range(0 if args.report_only else 10):
            todo = [i for i in selected if view2[i].fold == fold and i not in done]
            if not todo:
                continue
            train = [p for p in view2 if p.fold != fold]
            a, b, same, images = data.arrays(train)
            params = fit_head(config, images, a, b, same, name=f"{args.point}-fold{fold}")
            point_dir = work / f"fold{fold}"
            if not (point_dir / "meta.json").is_file():
                save_artifacts(params, point_dir, encoder.model_sha256, extra_meta={"config": config.to_dict()})
            client, server = FHEClient(point_dir), FHEServer(point_dir)
            bar.set_description(f"fold {fold}: keygen")
            client.generate_keys()
            keys = server.load_evaluation_keys(client.evaluation_keys())
            circuit = compile_head(params)  # for the simulated decision beside the real one
            bar.set_description(f"fold {fold}: FHE")
            for i in todo:
                template, probe = client.encrypt(a_all[i]), client.encrypt(b_all[i])
                start = time.perf_counter()
                result = server.run(template, probe, keys)
                seconds = time.perf_counter() - start
                qa, qb = params.quantize(a_all[i]), params.quantize(b_all[i])
                record = {
                    "pair": i,
                    "fold": fold,
                    "same": bool(same_all[i]),
                    "fhe": int(client.decrypt(result)),
                    "clear": int(params.decide(qa, qb)),
                    "simulated": int(circuit.simulate(qa, qb)),
                    "server_s": round(seconds, 4),
                }
                log.write(json.dumps(record) + "\n")
                log.flush()
                done[i] = record
                bar.update(1)

    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    committed.write_text("".join(json.dumps(done[i]) + "\n" for i in sorted(done)))
    # A stopped run is reported on its complete folds only: a fold runs its same-person pairs
    # first, so a half-done fold would skew the accuracy. Agreement counts use every pair done.
    all_done = [done[i] for i in selected if i in done]
    run_folds = [f for f in range(10) if all(i in done for i in selected if view2[i].fold == f)]
    finished = [i for i in selected if i in done and view2[i].fold in run_folds]
    records = [done[i] for i in finished]
    if not records:
        print(f"no fold complete yet ({len(all_done)} pairs done)", file=sys.stderr)
        return 1
    same = np.array([r["same"] for r in records])
    folds = np.array([r["fold"] for r in records])

    def fold_accuracy(key: str) -> list[float]:
        decisions = np.array([r[key] for r in records])
        return [float(np.mean(decisions[folds == f] == same[folds == f])) for f in run_folds]

    fhe_folds = fold_accuracy("fhe")
    a_sel, b_sel = a_all[finished], b_all[finished]
    float_result = ten_fold(np.linalg.norm(a_sel - b_sel, axis=1), same, folds) if len(run_folds) == 10 else {}
    report = {
        "protocol": "LFW View 2: head fitted on 9 folds, real FHE on the 10th, for each of the 10 folds",
        "variant": lfw.variant(),
        "point": args.point,
        "config": config.to_dict(),
        "compiled_with": compiled_with,
        "run_key": run_key[:16],
        "n_pairs_fhe": len(records),
        "n_pairs_selected": len(selected),
        "n_pairs_done_including_incomplete_folds": len(all_done),
        "folds_run": run_folds,
        "fhe_accuracy": float(np.mean(fhe_folds)),
        "fhe_std": float(np.std(fhe_folds, ddof=1)) if len(fhe_folds) > 1 else None,
        "fold_accuracies_fhe": fhe_folds,
        "accuracy_clear_float_128d": float_result.get("mean_accuracy"),
        "accuracy_clear_quantised": float(np.mean(fold_accuracy("clear"))),
        "accuracy_simulated": float(np.mean(fold_accuracy("simulated"))),
        "fhe_vs_clear_quantised_disagreements": int(sum(r["fhe"] != r["clear"] for r in all_done)),
        "fhe_vs_simulated_disagreements": int(sum(r["fhe"] != r["simulated"] for r in all_done)),
        "server_run_s_median": float(np.median([r["server_s"] for r in all_done])),
        "complete": len(records) == 6000,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    frontier_path = args.out.parent / "fhe_frontier.json"
    if frontier_path.is_file():  # the frontier's "accuracy_fhe (where run)"
        frontier = json.loads(frontier_path.read_text())
        for point in frontier["points"]:
            if point["name"] == args.point:
                point["accuracy_fhe"] = report["fhe_accuracy"]
                point["accuracy_fhe_pairs"] = report["n_pairs_fhe"]
        frontier_path.write_text(json.dumps(frontier, indent=1) + "\n")
    print(json.dumps({k: v for k, v in report.items() if "fold" not in k}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
