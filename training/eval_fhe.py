"""Real FHE execution of the head over LFW View 2 (10 folds), resumable.

    python -m training.eval_fhe --lfw-dir PATH [--point accurate] [--pairs-per-fold N]

For each test fold the head is fitted on the other 9 folds (exactly as `train_head` does) and gets the
shipped heads' level element with its `balanced` level, set out of fold as `security_levels` sets it
(`training.folds.balanced_out_of_fold`); it is compiled into deployable artifacts and driven through the
deployment classes, each probe asking for `balanced`: `FHEClient`
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
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from client_encoder.encoder import DEFAULT_ENCODER, ENCODERS
from client_encoder.models import cache_dir
from fhe_head.artifacts import ARTIFACTS_ROOT
from fhe_head.build import save_artifacts
from fhe_head.circuit import DEFAULT_GLOBAL_P_ERROR, PARAMETER_STRATEGY, compile_head
from fhe_head.client import FHEClient
from fhe_head.head import HeadParams
from fhe_head.server import FHEServer
from training.embeddings import encoder_vectors
from training.folds import balanced_out_of_fold, fit_without_fold
from training.head_fit import HeadConfig
from training.heads import config_from_dict
from training.level_element import add_levels
from training.lfw import Pair, open_lfw_for_cli, unique_images
from training.pairs import PairData, folds, labels
from training.paths import METRICS
from training.protocol import ten_fold

RESULTS_DIR = METRICS / "eval_fhe"
# Everything that decides the circuits and their keys, beside the head's configuration: a change starts a new run.
COMPILED_WITH = {"parameter_selection_strategy": PARAMETER_STRATEGY.value, "global_p_error": DEFAULT_GLOBAL_P_ERROR}
# How each fold's head decides (part of the run key). Runs before it used the head's own rounded threshold,
# set on its training pairs, and no level element.
DECISION = "level element, balanced set out of fold"


def shipped_config(point: str) -> HeadConfig:
    meta = json.loads((ARTIFACTS_ROOT / point / "meta.json").read_text())
    return config_from_dict(meta["config"])


def run_key(config: HeadConfig, encoder_sha256: str, variant: str) -> str:
    """The name of a run's decisions (artifacts/metrics/eval_fhe/<key>.jsonl): what decides its circuits."""
    key = [config.to_dict(), encoder_sha256, variant, COMPILED_WITH, DECISION]
    return hashlib.sha256(json.dumps(key).encode()).hexdigest()[:16]


@dataclass
class FheRun:
    """One resumable evaluation: the pairs, their embeddings, the configuration and where decisions go."""

    point: str
    variant: str
    config: HeadConfig
    view2: list[Pair]
    data: PairData
    encoder_sha256: str
    selected: list[int]  # indices into view2 of the pairs to run

    @property
    def run_key(self) -> str:
        return run_key(self.config, self.encoder_sha256, self.variant)

    @property
    def work(self) -> Path:
        return cache_dir() / "eval_fhe" / self.run_key

    @property
    def checkpoint(self) -> Path:
        return self.work / "decisions.jsonl"

    @property
    def committed(self) -> Path:
        # The decisions also live in the repository (small), so a run of several hours survives a
        # lost cache or a fresh machine: both are read, the union is kept.
        return RESULTS_DIR / f"{self.run_key}.jsonl"

    def save_done(self, done: dict[int, dict]) -> None:
        """Copy every decision so far into the repository's file (every 50 pairs, after each fold, at the end)."""
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        self.committed.write_text("".join(json.dumps(done[i]) + "\n" for i in sorted(done)))

    def load_done(self) -> dict[int, dict]:
        done = {}
        for path in (self.committed, self.checkpoint):
            if path.is_file():
                for line in path.read_text().splitlines():
                    if line.strip():
                        record = json.loads(line)
                        done[record["pair"]] = record
        return done


def select_pairs(view2: list[Pair], pairs_per_fold: int) -> list[int]:
    """The first N/2 same-person and N/2 different-person pairs of each fold (LFW lists 300 of each)."""
    half = pairs_per_fold // 2
    return [i for i, p in enumerate(view2) if (i - 600 * p.fold) % 300 < half]


def run_fold(run: FheRun, fold: int, todo: list[int], done: dict[int, dict], log, bar) -> None:
    """Fit the head without `fold`, ship it to a work folder, and decide `todo` in real FHE."""
    plain = fit_without_fold(run.data, run.view2, run.config, fold, name=f"{run.point}-fold{fold}")
    a_all, b_all = run.data.sides(run.view2)
    same, fold_of = labels(run.view2), folds(run.view2)

    def head_without(without: frozenset[int]) -> HeadParams:
        return fit_without_fold(run.data, run.view2, run.config, without)

    balanced = balanced_out_of_fold(head_without, a_all, b_all, same, fold_of, frozenset([fold]))
    params = add_levels(plain, {"balanced": balanced})
    point_dir = run.work / f"fold{fold}"
    if not (point_dir / "meta.json").is_file():
        save_artifacts(params, point_dir, run.encoder_sha256, extra_meta={"config": run.config.to_dict()})
    client, server = FHEClient(point_dir), FHEServer(point_dir)
    bar.set_description(f"fold {fold}: keygen")
    client.generate_keys()
    keys = server.load_evaluation_keys(client.evaluation_keys())
    circuit = compile_head(params)  # for the simulated decision beside the real one
    bar.set_description(f"fold {fold}: FHE")
    for i in todo:
        template, probe = client.encrypt(a_all[i]), client.encrypt(b_all[i], "balanced")
        start = time.perf_counter()
        result = server.run(template, probe, keys)
        seconds = time.perf_counter() - start
        qa, qb = params.quantize(a_all[i]), params.quantize(b_all[i], "balanced")
        record = {
            "pair": i,
            "fold": fold,
            "same": bool(run.view2[i].same),
            "fhe": int(client.decrypt(result)),
            "clear": int(params.decide(qa, qb)),
            "simulated": int(circuit.simulate(qa, qb)),
            "server_s": round(seconds, 4),
        }
        log.write(json.dumps(record) + "\n")
        log.flush()
        done[i] = record
        bar.update(1)
        if len(done) % 50 == 0:
            run.save_done(done)  # a fold takes ~half an hour: keep the repository's copy close behind


def run_pairs(run: FheRun, done: dict[int, dict]) -> None:
    """Every selected pair not yet done, fold by fold, appended to the checkpoint as it goes."""
    run.work.mkdir(parents=True, exist_ok=True)
    initial = sum(i in done for i in run.selected)
    with run.checkpoint.open("a") as log, tqdm(total=len(run.selected), initial=initial) as bar:
        for fold in range(10):
            todo = [i for i in run.selected if run.view2[i].fold == fold and i not in done]
            if todo:
                run_fold(run, fold, todo, done, log, bar)
                run.save_done(done)  # a run stopped later still leaves its finished folds committable


def report(run: FheRun, done: dict[int, dict]) -> dict | None:
    """The figures of the complete folds (None when no fold is complete)."""
    # A stopped run is reported on its complete folds only: a fold runs its same-person pairs
    # first, so a half-done fold would skew the accuracy. Agreement counts use every pair done.
    selected, view2 = run.selected, run.view2
    all_done = [done[i] for i in selected if i in done]
    run_folds = [f for f in range(10) if all(i in done for i in selected if view2[i].fold == f)]
    finished = [i for i in selected if i in done and view2[i].fold in run_folds]
    records = [done[i] for i in finished]
    if not records:
        print(f"no fold complete yet ({len(all_done)} pairs done)", file=sys.stderr)
        return None
    same = np.array([r["same"] for r in records])
    folds = np.array([r["fold"] for r in records])

    def fold_accuracy(key: str) -> list[float]:
        decisions = np.array([r[key] for r in records])
        return [float(np.mean(decisions[folds == f] == same[folds == f])) for f in run_folds]

    fhe_folds = fold_accuracy("fhe")
    distances = run.data.distances([view2[i] for i in finished])
    float_result = ten_fold(distances, same, folds) if len(run_folds) == 10 else {}
    return {
        "protocol": "LFW View 2: head fitted on 9 folds, its balanced level set out of fold on them (heads fitted "
        "without one more fold), real FHE on the 10th, for each of the 10 folds",
        "decision": DECISION,
        "variant": run.variant,
        "point": run.point,
        "config": run.config.to_dict(),
        "compiled_with": COMPILED_WITH,
        "run_key": run.run_key,
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


def update_frontier(frontier_path: Path, result: dict) -> None:
    """The frontier's "accuracy_fhe (where run)" for this point."""
    if not frontier_path.is_file():
        return
    frontier = json.loads(frontier_path.read_text())
    for point in frontier["points"]:
        if point["name"] == result["point"]:
            point["accuracy_fhe"] = result["fhe_accuracy"]
            point["accuracy_fhe_pairs"] = result["n_pairs_fhe"]
    frontier_path.write_text(json.dumps(frontier, indent=1) + "\n")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lfw-dir", help="LFW root (default: $LFW_DIR); use the original release")
    parser.add_argument(
        "--encoder", choices=ENCODERS, default=DEFAULT_ENCODER, help="face encoder (default: %(default)s)"
    )
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
    args.out = args.out or METRICS / f"lfw_fhe{suffix}.json"
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    lfw = open_lfw_for_cli(args.lfw_dir)
    view2 = lfw.view2()
    vectors = encoder_vectors(unique_images(view2), args.encoder, desc=f"LFW {lfw.variant()}")
    data = PairData(vectors)
    selected = select_pairs(view2, args.pairs_per_fold)
    run = FheRun(args.point, lfw.variant(), shipped_config(args.point), view2, data, vectors.model_sha256, selected)
    done = run.load_done()
    if not args.report_only:
        run_pairs(run, done)
    run.save_done(done)
    result = report(run, done)
    if result is None:
        return 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    update_frontier(args.out.parent / "fhe_frontier.json", result)
    print(json.dumps({k: v for k, v in result.items() if "fold" not in k}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
