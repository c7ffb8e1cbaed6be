"""docs/results.md from the measured figures: every number read from a JSON file under artifacts/.

    python -m training.results           # rewrite docs/results.md and README.md's results table
    python -m training.results --check   # exit 1 when either differs from what the JSON files give

One `Section` per table: its title, the command that writes its JSON, the JSON files it reads and a
function from their contents to Markdown lines. A new metrics file (e.g. a comparison of encoders)
is one more function and one more entry in SECTIONS. Nothing here imports the project: the figures
are read, not recomputed.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results.md"
README = ROOT / "README.md"
BEGIN = "<!-- results table: written by `python -m training.results`, do not edit by hand -->"
END = "<!-- end of results table -->"
LEVELS = ("balanced", "1e-2", "1e-3", "1e-4")
HEADS = {
    "clear": "clear float 128-d",
    "accurate": "accurate head (integer model = FHE)",
    "fast": "fast head (integer model = FHE)",
}

Json = Any


def model_of(levels: Json, name: str) -> Json:
    """A model of a security-levels report: "accurate", "fast", or "clear" (labelled with its vectors' size)."""
    if name == "clear":
        return next(m for key, m in levels["models"].items() if key.startswith("clear float"))
    return levels["models"][HEADS[name]]


# ---- formatting -------------------------------------------------------------------------------------


def pct(x: float, digits: int = 2) -> str:
    return f"{100 * x:.{digits}f}%"


def pm(mean: float, std: float, digits: int = 2) -> str:
    """A mean share and its spread over folds, in percent and points: '99.03% ± 0.35'."""
    return f"{100 * mean:.{digits}f}% ± {100 * std:.{digits}f}"


def sec(s: float) -> str:
    return f"{s:.2f} s"


def ms(s: float) -> str:
    return f"{1e3 * s:.1f} ms"


def sci(x: float, digits: int = 2) -> str:
    """1.1715e10 -> '1.17e10' (Concrete's complexity, FMRs)."""
    if x == 0:
        return "0"
    mantissa, exp = f"{x:.{digits}e}".split("e")
    return f"{mantissa}e{int(exp)}"


def rate(x: float, exp: int, digits: int = 2) -> str:
    """A rate in units of 10^exp, so a column of one level reads alike: 0.0009 at -3 -> '0.90e-3'."""
    return "0" if x == 0 else f"{x / 10**exp:.{digits}f}e{exp}"


def level_exp(level: str) -> int:
    return -2 if level == "balanced" else int(level.split("e")[1])


def row(*cells: object) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def header(*cells: str) -> list[str]:
    return [row(*cells), "|" + "---|" * len(cells)]


# ---- sections ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Section:
    title: str
    command: str
    sources: tuple[str, ...]
    render: Callable[..., list[str]]

    def lines(self, root: Path) -> list[str]:
        data = [json.loads((root / s).read_text()) for s in self.sources]
        files = ", ".join(f"`{s}`" for s in self.sources)
        return [f"## {self.title}", "", *self.render(*data), "", f"Command: `{self.command}`. Source: {files}.", ""]


def headline(
    fhe: Json, fast_fhe: Json, frontier: Json, levels: Json, bench: Json, app: Json, clear: Json, base: str = ""
) -> list[str]:
    """The short table the README carries (with base="docs/results.md"): each figure links to its section."""

    def link(text: str, section: str) -> str:
        return f"[{text}]({base}#{anchor(section)})"

    shipped = {p["name"]: p for p in frontier["points"] if p["name"] in ("accurate", "fast")}

    def accuracy_of(point: str, real: Json) -> str:
        """Real FHE when its run is of the shipped head (configuration and balanced level), else the integer
        model (= FHE) of the shipped balanced level."""
        integer = link(
            f"{pct(model_of(levels, point)['lfw_balanced_accuracy']['balanced_out_of_fold']['mean'])} "
            "integer model (= FHE)",
            "Security levels: FMR and FNMR per level",
        )
        if real.get("config") != shipped[point]["view2"]["config"] or "decision" not in real:
            return integer + "; real FHE of this head pending"
        return (
            integer
            + "; "
            + link(f"{pct(real['fhe_accuracy'])} real FHE, {real['n_pairs_fhe']} pairs", "Real FHE over LFW")
        )

    lines = header(
        "", "LFW accuracy (10-fold)", "TAR at FMR 1e-3", "server run", "evaluation keys", "app, later comparison"
    )
    for point, accuracy in (("accurate", accuracy_of("accurate", fhe)), ("fast", accuracy_of("fast", fast_fhe))):
        cost = bench["points"][point]
        tar = model_of(levels, point)["levels"]["1e-3"]["tar_mean"]
        later = app["points"][point]["later_s"]["median"]
        lines.append(
            row(
                f"`{point}` head (d = {cost['dims']})",
                accuracy,
                link(pct(tar, 1), "Security levels: FMR and FNMR per level"),
                link(sec(cost["server_run_s_median"]), "Shipped heads through the deployment classes"),
                link(f"{cost['eval_keys_mb']:.1f} MB", "Shipped heads through the deployment classes"),
                link(f"{later:.1f} s", "The app, photo to verdict"),
            )
        )
    clear_tar = model_of(levels, "clear")["levels"]["1e-3"]["tar_mean"]
    encoder = frontier.get("encoder", "dlib")
    lines.append(
        row(
            f"clear {encoder} encoder (not private)",
            link(pct(_clear_float(frontier)), "FHE head: accuracy and cost per dimension"),
            link(pct(clear_tar, 1), "Security levels: FMR and FNMR per level"),
            "—",
            "—",
            "—",
        )
    )
    return lines


def encoder_accuracy(original: Json, deep: Json) -> list[str]:
    lines = [
        "LFW View 2: 6,000 pairs, 10 folds, each fold scored with the distance threshold best on the other 9;",
        "mean ± std over folds; clear float32 ONNX descriptors, Euclidean distance, from the raw photo.",
        "",
        *header("LFW variant", "no TTA", "flip (2 views)", "jitter (18 views, default)"),
    ]
    for name, data in (("original release (headline)", original), ("deep-funneled", deep)):
        cells = [pm(data["by_tta"][m]["mean_accuracy"], data["by_tta"][m]["std"]) for m in ("none", "flip", "jitter")]
        lines.append(row(name, *cells))
    counts = original["detector_counts_view2"]
    lines += [
        "",
        f"Detection on the {original['images_view2']:,} View 2 photos (original): "
        + ", ".join(f"{k} {v:,}" for k, v in counts.items())
        + f", no face: {original['no_face']['count']}; {original['multi_face_images_view2']} photos "
        f"have several faces.",
        "View 1 (pairsDevTrain → pairsDevTest), original: "
        + ", ".join(
            f"{m} {pct(original['by_tta'][m]['view1_dev_test_accuracy'], 1)}" for m in ("none", "flip", "jitter")
        )
        + ".",
    ]
    return lines


def encoder_cost(bench: Json) -> list[str]:
    lines = [
        f"One 250×250 LFW photo, medians of {bench['runs']} runs ({bench['machine']['cpu']}, "
        f"{bench['machine']['cores']} cores).",
        "",
    ]
    stages = list(next(iter(bench["latency"].values()))["stage_ms_median"])
    lines += header("TTA", "views", "total", *stages)
    for mode, lat in bench["latency"].items():
        stage = lat["stage_ms_median"]
        lines.append(
            row(mode, lat["views"], f"{lat['total_ms_median']:.1f} ms", *(f"{stage[s]:.1f} ms" for s in stages))
        )
    fid = bench["fidelity_vs_dlib"]
    lines += [
        "",
        f"ONNX model: {bench['onnx_mb']:.1f} MB. Against dlib's own descriptor on the same "
        f"{fid['chips_compared']} chips:",
        f"max abs difference {sci(fid['max_abs_diff'], 1)}, min cosine similarity 1 − {sci(1 - fid['min_cosine'], 1)}.",
    ]
    return lines


def tta_views(data: Json) -> list[str]:
    lines = [
        "Original LFW, View 2, 10 folds; heads refitted per fold on each view set's descriptors (integer model =",
        "FHE decisions); TAR at FMR 1e-3 by the security-levels protocol; client time = locate + align + embed of",
        f"one photo, median of {data['timing']['photos']}.",
        "",
        *header(
            "views", "client time", "clear 128-d", "clear TAR @ 1e-3", "accurate", "accurate TAR", "fast", "fast TAR"
        ),
    ]
    for views in data["by_views"].values():
        cells: list[str] = []
        for model in ("clear_128d", "accurate", "fast"):
            m = views.get(model)
            cells += [pct(m["accuracy"]), pct(m["tar_at_fmr_1e-3"], 1)] if m else ["", ""]
        lines.append(row(views["views"], f"{views['client_ms_median']:.0f} ms", *cells))
    return lines


def _frontier_points(frontier: Json, kind: str) -> list[Json]:
    return sorted((p for p in frontier["points"] if p["kind"] == kind), key=lambda p: p["dims"])


def _clear_float(frontier: Json) -> float:
    return frontier.get("accuracy_clear_float", frontier.get("accuracy_clear_float_128d"))


def _integer_accuracy(view2: Json) -> float:
    """Concrete's simulation where it ran, else the clear integer model (they are equal: exact rounding)."""
    return view2.get("accuracy_simulated", view2["accuracy_clear_quantised"])


def head_frontier(frontier: Json) -> list[str]:
    lines = [
        "Original LFW, View 2, 10 folds: the head (PCA, steps, tables, threshold) fitted on 9 folds, tested on the",
        "10th; hyper-parameters chosen on View 1 only. Simulated = Concrete's simulation = the clear integer model.",
        f"Encoder: {frontier.get('encoder', 'dlib')}; clear float: {pct(_clear_float(frontier))}. Server run:",
        "median of the `--retime` runs on 2 cores (of the timing runs of `make train` when it was not re-timed).",
        "",
        *header(
            "d",
            "point",
            "accuracy (simulated)",
            "naive baseline",
            "server run",
            "eval keys",
            "ciphertext in",
            "PBS",
            "max bits",
            "poly size",
        ),
    ]
    for p in _frontier_points(frontier, "hand-set"):
        name = p["name"] if not p["name"].startswith("hand-set") else "—"
        lines.append(
            row(
                p["dims"],
                name,
                pm(_integer_accuracy(p["view2"]), p["view2"]["std_clear_quantised"]),
                pct(p["naive_accuracy"]),
                sec(p["server_run_s_median"]),
                f"{p['eval_keys_mb']:.1f} MB",
                f"{p['ciphertext_kb']:.2f} KB",
                p["programmable_bootstrap_count"],
                p["max_bit_width"],
                "/".join(str(s) for s in p["polynomial_sizes"]),
            )
        )
    lines += ["", "![FHE frontier](../artifacts/metrics/fhe_frontier.png)"]
    return lines


def siamese(frontier: Json) -> list[str]:
    lines = [
        "Both kinds of head per d, same protocol and circuit shape (so the same cost).",
        "",
        *header("d", "hand-set (simulated)", "trained siamese (simulated)", "PBS", "max bits", "complexity"),
    ]
    trained = {p["dims"]: p for p in _frontier_points(frontier, "siamese")}
    if not trained:
        return [
            f"Not measured on the {frontier.get('encoder', 'dlib')} encoder (`make train` with `--kinds hand-set`); "
            "on dlib's encoder the trained head did not beat the hand-set one (artifacts/metrics/fhe_frontier.json "
            "before 2026-12-07, in git history)."
        ]
    for p in _frontier_points(frontier, "hand-set"):
        t = trained[p["dims"]]
        lines.append(
            row(
                p["dims"],
                pm(_integer_accuracy(p["view2"]), p["view2"]["std_clear_quantised"]),
                pm(t["view2"]["accuracy_simulated"], t["view2"]["std_clear_quantised"]),
                p["programmable_bootstrap_count"],
                p["max_bit_width"],
                sci(p["complexity"]),
            )
        )
    return lines


def deep_funneled_frontier(frontier: Json) -> list[str]:
    lines = [
        f"Same View 1 selection and View 2 protocol on the deep-funneled copy; float 128-d: "
        f"{pct(_clear_float(frontier))}.",
        "",
        *header("point", "d", "accuracy (simulated = clear integer)", "naive baseline"),
    ]
    for p in frontier["points"]:
        lines.append(row(p["name"], p["dims"], pct(p["accuracy_simulated"]), pct(p["naive_accuracy"])))
    return lines


def ceilings(data: Json) -> list[str]:
    lines = [
        "What the client's vector itself holds (same fold-wise protocol): float PCA-d, and PCA-d quantised to 4 or",
        "5 bits per dimension with exact squared differences (no table rounding, no saturation).",
        "",
        *header("d", "float PCA-d: accuracy / TAR@1e-3", "4-bit, exact squares", "5-bit, exact squares"),
    ]
    by_dims: dict[int, dict[str, Json]] = {}
    for r in data["rows"]:
        if r["dims"] != 128:
            by_dims.setdefault(r["dims"], {})[r["shape"]] = r
    for dims, shapes in sorted(by_dims.items()):
        cells = [
            f"{pct(shapes[s]['accuracy_mean'])} / {pct(shapes[s]['tar_at_fmr_1e-3_mean'], 1)}"
            for s in ("float", "4-bit", "5-bit")
        ]
        lines.append(row(dims, *cells))
    return lines


def mlp_check(data: Json) -> list[str]:
    lines = [
        f"View 1: fit on pairsDevTrain ({data['view1_train_pairs']} pairs), score on pairsDevTest "
        f"({data['view1_test_pairs']}); MLP in clear float.",
        "",
        *header("d", "plain sum, then threshold", "MLP, 4 hidden units", "MLP, 16 hidden units"),
    ]
    for r in data["rows"]:
        lines.append(
            row(
                r["dims"],
                pct(r["sum_then_threshold"], 1),
                pct(r["mlp_h4_float"]["mean"], 1),
                pct(r["mlp_h16_float"]["mean"], 1),
            )
        )
    return lines


def real_fhe(fast: Json, accurate: Json) -> list[str]:
    lines = [
        "For each fold the head is fitted on the other 9 and compiled; `FHEClient` encrypts each embedding on its",
        "own, `FHEServer` runs the circuit, the client decrypts.",
        "",
        *header(
            "point",
            "d",
            "pairs run in FHE",
            "FHE accuracy (10-fold)",
            "clear integer",
            "simulated",
            "FHE ≠ clear",
            "FHE ≠ simulated",
            "server run (median)",
        ),
    ]
    for data in (fast, accurate):
        lines.append(
            row(
                data["point"],
                data["config"]["dims"],
                f"{data['n_pairs_fhe']}"
                + (f" ({len(folds)} of 10 folds run)" if len(folds := data.get("folds_run", range(10))) < 10 else ""),
                pm(data["fhe_accuracy"], data["fhe_std"]),
                pct(data["accuracy_clear_quantised"]),
                pct(data["accuracy_simulated"]),
                data["fhe_vs_clear_quantised_disagreements"],
                data["fhe_vs_simulated_disagreements"],
                sec(data["server_run_s_median"]),
            )
        )
    return lines


def shipped_heads(bench: Json) -> list[str]:
    m = bench["machine"]
    lines = [
        f"Shipped points through `FHEClient` / `FHEServer`, medians of each point's runs "
        f"({m['cpu']}, {m['cores']} cores).",
        "",
        *header(
            "point",
            "d",
            "PBS",
            "keygen",
            "encrypt one embedding",
            "server run",
            "decrypt",
            "eval keys",
            "ciphertext in / out",
        ),
    ]
    for name, p in bench["points"].items():
        lines.append(
            row(
                name,
                p["dims"],
                p["programmable_bootstrap_count"],
                sec(p["keygen_s_median"]),
                ms(p["encrypt_one_embedding_s_median"]),
                sec(p["server_run_s_median"]),
                ms(p["decrypt_s_median"]),
                f"{p['eval_keys_mb']:.1f} MB",
                f"{p['ciphertext_in_kb']:.1f} KB / {p['ciphertext_out_kb']:.1f} KB",
            )
        )
    return lines


def head_engines(data: Json) -> list[str]:
    lines = [
        f"Rule: {data['rule']}. Concrete {data['concrete_python']}, Concrete-ML "
        f"{data['concrete_ml']}; real-FHE runs alternate.",
        "",
        *header(
            "head",
            "PBS",
            "max bits",
            "complexity direct / Concrete-ML",
            "server run direct / Concrete-ML",
            "ratio",
            "eval keys",
            "simulation = integer model",
        ),
    ]
    for name, p in data["points"].items():
        d, c = p["direct"], p["concrete_ml"]
        check = p["concrete_ml_simulation_vs_integer_model"]
        pairs = sum(v["pairs"] for v in check.values())
        agree = pairs - sum(v["mismatches"] for v in check.values())
        lines.append(
            row(
                f"{name} (d = {p['dims']})",
                c["programmable_bootstrap_count"],
                c["max_bit_width"],
                f"{sci(d['complexity'], 4)} / {sci(c['complexity'], 4)}",
                f"{sec(d['server_run_s_median'])} / {sec(c['server_run_s_median'])}",
                f"{p['server_time_ratio_concrete_ml_over_direct']:.2f}",
                f"{d['eval_keys_mb']:.1f} MB / {c['eval_keys_mb']:.1f} MB",
                f"{agree} / {pairs} pairs",
            )
        )
    return lines


def _levels_table(data: Json) -> list[str]:
    clear = next(key for key in data["models"] if key.startswith("clear float")).removeprefix("clear float ")
    lines = header("level", *(f"{m}: {k}" for m in (f"clear {clear}", "accurate", "fast") for k in ("FMR", "FNMR")))
    for level in LEVELS:
        cells: list[str] = []
        for model in HEADS:
            lv = model_of(data, model)["levels"][level]
            exp = level_exp(level)
            cells += [
                f"{rate(lv['fmr']['mean'], exp)} ± {rate(lv['fmr']['std'], exp)}",
                pm(lv["fnmr"]["mean"], lv["fnmr"]["std"]),
            ]
        lines.append(row(level, *cells))
    return lines


def _worst_fold_table(data: Json) -> list[str]:
    lines = header("level", *(f"{m}: {k}" for m in ("accurate", "fast") for k in ("out of fold", "own people")))
    for level in LEVELS[1:]:
        target = float(level)
        cells = []
        for model in ("accurate", "fast"):
            lv = model_of(data, model)["levels"][level]
            former = lv.get("fmr_if_set_on_training_people")
            cells += [
                f"{max(lv['fmr']['per_fold']) / target:.2f}",
                f"{max(former['per_fold']) / target:.2f}" if former else "–",
            ]
        lines.append(row(level, *cells))
    return lines


def _balanced_accuracy_table(data: Json) -> list[str]:
    lines = header("head", "balanced set out of fold", "the head's own threshold (on its training pairs)")
    for model in ("accurate", "fast"):
        accuracy = model_of(data, model)["lfw_balanced_accuracy"]
        lines.append(row(model, *(pct(accuracy[k]["mean"]) for k in ("balanced_out_of_fold", "own_threshold"))))
    return lines


def security_levels(original: Json, deep: Json) -> list[str]:
    return [
        f"Impostor pairs = every cross-identity pair of images within a View 2 fold "
        f"({model_of(original, 'clear')['impostor_pairs_total']:,});",
        "genuine pairs = View 2's same-person pairs (300 per fold); each level's threshold set on the other 9 folds,",
        "FMR / FNMR measured on the held-out fold's people. Heads: their exact integer model (= "
        "FHE), levels set out of fold (heads fitted without one more fold say which rate on the head's own",
        "people lets in the target rate of strangers). Mean ± std over folds.",
        "",
        "Original LFW:",
        "",
        *_levels_table(original),
        "",
        "Worst held-out fold's FMR ÷ target, levels set out of fold, and as before (on the head's own people):",
        "",
        *_worst_fold_table(original),
        "",
        "LFW 10-fold accuracy (View 2's 600 pairs per fold) at `balanced`, integer model (= FHE): its threshold",
        "set out of fold (the best accuracy of heads on pairs of people they never saw), as shipped, and the",
        "head's own best threshold on its training pairs, as before:",
        "",
        *_balanced_accuracy_table(original),
        "",
        "![DET](../artifacts/metrics/security_levels_det.png)",
        "",
        "Deep-funneled LFW:",
        "",
        *_levels_table(deep),
    ]


def _look_alike_groups(data: Json) -> list[int]:
    """Groups ordered from the one the clear descriptor tells apart worst (most false matches at 1e-3)."""
    fmr = model_of(data, "clear")["levels"]["1e-3"]["fmr_per_look_alike_group"]
    return sorted(range(len(fmr)), key=lambda g: -fmr[g])


def look_alike(data: Json) -> list[str]:
    lines = [
        f"View 2's {data['people']:,} people split into {data['look_alike_groups']['k']} look-alike "
        f"groups (k-means on each person's mean",
        "descriptor); each level, thresholds unchanged, on the held-out fold's impostor pairs within one group.",
        "",
        *header("level", *(f"{m}: all pairs / look-alike / worst group" for m in ("clear", "accurate", "fast"))),
    ]
    for level in LEVELS:
        cells = []
        exp = level_exp(level)
        for model in HEADS:
            lv = model_of(data, model)["levels"][level]
            cells.append(
                f"{rate(lv['fmr']['mean'], exp)} / {rate(lv['fmr_look_alike']['mean'], exp + 1, 1)} "
                f"/ {sci(max(lv['fmr_per_look_alike_group']), 1)}"
            )
        lines.append(row(level, *cells))
    lines += [
        "",
        "Per group (pooled over the 10 folds; each cell clear / accurate / fast), from the group the model tells apart",
        "worst to the one it tells apart best; FNMR on the group's own View 2 genuine pairs:",
        "",
        *header("group", "people (images)", "genuine pairs", "FMR at 1e-3", "FMR at 1e-4", "FNMR at 1e-3"),
    ]
    groups = data["look_alike_groups"]
    genuine = model_of(data, "clear")["genuine_pairs_per_look_alike_group"]
    for letter, g in zip("ABCDEFGHIJKLMNOP", _look_alike_groups(data), strict=False):

        def cell(level: str, key: str, fmt: Callable[[float], str], g: int = g) -> str:
            return " / ".join(fmt(model_of(data, m)["levels"][level][key][g]) for m in HEADS)

        lines.append(
            row(
                letter,
                f"{groups['people'][g]} ({groups['images'][g]})",
                genuine[g],
                cell("1e-3", "fmr_per_look_alike_group", lambda x: sci(x, 1)),
                cell("1e-4", "fmr_per_look_alike_group", lambda x: sci(x, 1)),
                cell("1e-3", "fnmr_per_look_alike_group", lambda x: pct(x, 1)),
            )
        )
    return lines


def identification(data: Json) -> list[str]:
    searches = ("16", "64", "16 look-alike")
    lines = [
        "Per held-out fold, 2,000 searches of a stranger's image against n enrolled people of that fold; FPIR = the",
        "share of searches that name someone. Mean ± std over the 10 folds.",
        "",
        *header("level", *(f"{m}: n = {s}" for m in ("accurate", "fast") for s in searches)),
    ]
    for level in LEVELS:
        cells = []
        for model in ("accurate", "fast"):
            fpir = model_of(data, model)["levels"][level]["false_positive_identification_rate"]
            digits = 2 if fpir["16"]["mean"] < 0.01 else 1
            cells += [pm(fpir[s]["mean"], fpir[s]["std"], digits) for s in searches]
        lines.append(row(level, *cells))
    return lines


def levels_fhe(accurate: Json, fast: Json) -> list[str]:
    lines = [
        "Per level, the pairs whose integer scores lie closest to its threshold (half each side), run through",
        "`FHEClient` → `FHEServer.run` → decrypt.",
        "",
        *header(
            "head",
            "circuit",
            "level",
            "raw threshold",
            "pairs in real FHE",
            "their raw scores",
            "accepted",
            "disagreements with the integer model",
        ),
    ]
    for data in (accurate, fast):
        for level, lv in data["levels"].items():
            low, high = lv["raw_score_range"] or ("–", "–")
            lines.append(
                row(
                    data["point"],
                    f"`{data['circuit_id']}`",
                    level,
                    lv["raw_threshold"],
                    lv["pairs"],
                    f"{low}–{high}" if lv["pairs"] else "–",
                    lv["accepted_by_fhe"],
                    lv["fhe_vs_integer_model_disagreements"],
                )
            )
    lines += [
        "",
        "Server run, median: "
        + "; ".join(f"{d['point']} {sec(d['server_run_s_median'])}" for d in (accurate, fast))
        + ".",
    ]
    return lines


def levels_cost(data: Json) -> list[str]:
    lines = [
        f"Circuits without and with the level element, alternating in one process "
        f"({data['points']['accurate']['before']['server_runs']} runs each).",
        "",
        *header("point", "PBS", "complexity", "max bit width", "evaluation keys", "server run (median)", "keygen"),
    ]
    for name, p in data["points"].items():
        for when in ("before", "after"):
            c = p[when]
            label = f"{name}, {'without' if when == 'before' else 'with'} levels"
            lines.append(
                row(
                    label,
                    c["programmable_bootstrap_count"],
                    sci(c["complexity"], 3),
                    c["max_bit_width"],
                    f"{c['eval_keys_mb']:.2f} MB",
                    f"{c['server_run_s_median']:.3f} s",
                    sec(c["keygen_s"]),
                )
            )
        r = p["after_vs_before"]
        lines.append(
            row(
                f"{name}: with / without",
                f"+{r['extra_pbs']}",
                f"{r['complexity']:.3f}×",
                "",
                f"{r['eval_keys']:.3f}×",
                f"{r['server_time']:.3f}×",
                "",
            )
        )
    return lines


def strict_refit(data: Json) -> list[str]:
    ref = data["float_pca_reference"]
    lines = [
        f"Float PCA-{ref['dims']} reference: TAR {pm(ref['tar']['mean'], ref['tar']['std'], 1)} at "
        f"FMR 1e-3. Each candidate chosen on View 1",
        "only, measured fold-wise on View 2, then compiled and timed alternately with the shipped accurate head.",
        "",
        *header(
            "candidate",
            "shape",
            "TAR at 1e-3",
            "FMR at 1e-3",
            "TAR at 1e-4",
            "accuracy (balanced)",
            "keys",
            "server run (× shipped, same run)",
            "eval keys",
            "keygen",
            "PBS / max bits / complexity",
        ),
    ]
    for name, cand in data["candidates"].items():
        cfg = cand["chosen"]
        levels = cand["view2"]["levels"]
        for keys, compiled in cand["compiled"].items():
            cost = compiled["cost"]
            c, shipped = cost["candidate"], cost["shipped accurate"]
            lines.append(
                row(
                    name,
                    f"{cfg['levels']}-level tables, clip {cfg['clip_sigma']}, saturation {cfg['saturation']}",
                    pct(levels["1e-3"]["tar_mean"], 1),
                    rate(levels["1e-3"]["fmr"]["mean"], -3),
                    pct(levels["1e-4"]["tar_mean"], 1),
                    pct(cand["view2_balanced_accuracy"]["mean"]),
                    keys,
                    f"{sec(c['server_run_s_median'])} "
                    f"({c['server_run_s_median'] / shipped['server_run_s_median']:.2f}×)",
                    f"{c['eval_keys_mb']:.0f} MB",
                    sec(c["keygen_s"]),
                    f"{c['programmable_bootstrap_count']} / {c['max_bit_width']} / {sci(c['complexity'])}",
                )
            )
    return lines


def app_path(data: Json) -> list[str]:
    m = data["machine"]
    lines = [
        f"{data['what'][0].upper()}{data['what'][1:]}; {data['protocol']}. Load average "
        f"{m['loadavg_before'][0]} before, {m['loadavg_after'][0]} after;",
        f"measured {data['measured_at']}. Medians (min–max).",
        "",
        *header(
            "head",
            "first comparison of a session",
            "later comparison (new photos)",
            "re-press (same photos)",
            "photo upload → preview",
            "server FHE time shown",
            "verdicts right",
        ),
    ]

    def spread(s: Json) -> str:
        return f"{s['median']:.1f} s ({s['min']:.1f}–{s['max']:.1f})"

    for name, p in data["points"].items():
        c = p["circuit"]
        lines.append(
            row(
                f"{name} ({c['dims']} dims, complexity {sci(c['complexity'])}, "
                f"{c['programmable_bootstrap_count']} PBS)",
                *(spread(p[k]) for k in ("first_s", "later_s", "repress_s", "upload_s", "server_fhe_s")),
                p["verdicts_correct"],
            )
        )
    return lines


def service_load(load: Json, before: Json, auth: Json) -> list[str]:
    lines = [
        f"{load['clients']} clients with their own keys × {load['verifies_per_client']} "
        f"verifications each, at once, `{load['point']}` point,",
        f"signed requests; {load['server']}; latency = {load['latency_includes']}.",
        "",
        *header(
            "run", "answers", "failures", "verifications/s", "latency p50", "latency p95", "server FHE time (median)"
        ),
    ]
    for name, d in (("signed requests", load), ("before request signing", before)):
        lines.append(
            row(
                name,
                f"{d['completed']}/{d['requests']}",
                d["failures"],
                f"{d['throughput_per_s']:.2f}",
                sec(d["latency_s_p50"]),
                sec(d["latency_s_p95"]),
                sec(d["server_fhe_s_median"]),
            )
        )
    lines += [
        "",
        f"Signing one request ({auth['scheme']}): {auth['sign']['median_ms']:.3f} ms on the client, checking it",
        f"{auth['verify']['median_ms']:.2f} ms on the server (medians of {auth['repeats']}).",
    ]
    return lines


def identify_scaling(data: Json) -> list[str]:
    rows = [r for r in data["scaling"]["rows"] if r["point"] == "fast"]
    sizes = sorted({r["n"] for r in rows})

    def label(r: Json) -> str:
        if r["engine"] == "embedded":
            return f"embedded pool, {r['cores']} cores ({r['pass']} pass)"
        workers = int(r["engine"].split("_")[1])
        batched = f", batched K = {r['batched_k']}" if r.get("batched_k", 1) > 1 else ""
        return f"Ray, {workers} worker{'s' if workers > 1 else ''} (1 CPU each){batched}"

    table: dict[str, dict[int, float]] = {}
    for r in rows:
        table.setdefault(label(r), {})[r["n"]] = r["wall_s"]
    lines = [
        f"Fast head, real FHE, every bit checked ({data['machine']}; load average {data['loadavg_before'][0]} before,",
        f"{data['loadavg_after'][0]} after).",
        "",
        *header("N templates", *(str(n) for n in sizes)),
        *(row(name, *(f"{t[n]:.1f} s" for n in sizes)) for name, t in table.items()),
    ]
    s = data["summary"]
    lines += [
        "",
        "Ray's overhead at equal cores: "
        + " / ".join(f"{100 * v:+.0f}%" for v in s["ray_overhead_per_template_vs_embedded_equal_cores"].values())
        + "; two workers against one: "
        + " / ".join(f"{v:.2f}×" for v in s["ray_2_over_1_worker_speedup"].values())
        + f" (N = {' / '.join(s['ray_2_over_1_worker_speedup'])}).",
        "",
        "Batching (batched over one-per-run seconds per template):",
        "",
        *header("head", "K", "ratio", "faster in every repetition", "chance that one of K answers is wrong"),
    ]
    for point, b in data["batching"].items():
        for k, r in b["by_k"].items():
            lines.append(
                row(
                    point,
                    k,
                    f"{r['ratio']:.2f}",
                    "yes" if r["batched_faster_in_every_rep"] else "no",
                    sci(r["p_error_any_of_k_answers"], 1),
                )
            )
    lines += [
        "",
        "Shipped K: "
        + ", ".join(
            f"{p} {b['chosen_k']} (per answer error {sci(b['p_error_per_answer'], 1)})"
            for p, b in data["batching"].items()
        )
        + ".",
    ]
    pred = data["prediction"]
    lines += [
        "",
        f"{pred['label']}: `{pred['formula']}` with c = {pred['c1_s_per_template_one_cpu']:.2f} s, "
        f"o = {pred['o_ray_overhead']:.2f}:",
        "",
        *header("workers", *(f"N = {n}" for n in pred["latency_s_by_workers_and_n"]["1"]), "N = 256, batched"),
    ]
    for w, by_n in pred["latency_s_by_workers_and_n"].items():
        batched = pred["latency_s_by_workers_and_n_batched_fast"][w]["256"]
        lines.append(row(w, *(f"~{v:.0f} s" for v in by_n.values()), f"~{batched:.0f} s"))
    lines += ["", "![identification scaling](../artifacts/metrics/identify_scaling.png)"]
    return lines


def benchmark(bench: Json, heads: Json, fhe: Json, fast_fhe: Json) -> list[str]:
    lines = [
        "The shipped heads (their own benchmark) beside the CKKS peer and the full-image FHE baseline",
        f"({bench['machine']['cpu']}, {bench['machine']['cores']} cores). Full tables: `artifacts/bench/benchmark.md`.",
        "",
        *header(
            "system",
            "server returns",
            "key owner learns",
            "LFW accuracy",
            "server run",
            "eval keys",
            "ciphertext in / out",
        ),
    ]
    for point, acc in (("accurate", fhe), ("fast", fast_fhe)):
        p = heads["points"][point]
        lines.append(
            row(
                f"FHE head `{point}` (TFHE, d = {p['dims']})",
                "1 encrypted bit",
                "same / different only",
                f"{pct(acc['fhe_accuracy'])} (real FHE, {acc['n_pairs_fhe']} pairs)",
                sec(p["server_run_s_median"]),
                f"{p['eval_keys_mb']:.1f} MB",
                f"{p['ciphertext_in_kb']:.1f} / {p['ciphertext_out_kb']:.1f} KB",
            )
        )
    ckks = bench["ckks"]
    c = ckks["variants"]["128-d"]
    lines.append(
        row(
            f"CKKS peer ({ckks['library']}, 128-d squared distance)",
            "encrypted score",
            "the distance",
            f"{pct(c['accuracy'])} (10-fold)",
            ms(c["server_run_s_median"]),
            f"{ckks['public_context_mb']:.1f} MB",
            f"{c['ciphertext_in_kb']:.0f} / {c['ciphertext_out_kb']:.0f} KB",
        )
    )
    for v in bench["baseline"]["variants"].values():
        run = v.get("real_fhe_one_pair")
        est = v.get("estimate")
        time = (
            f"{run['server_run_s'] / 60:.1f} min (measured, 1 pair)"
            if run
            else f"~{est['server_run_s_by_pbs'] / 60:.0f} min (estimate: PBS × "
            f"{est['per_pbs_s_measured'] * 1e3:.0f} ms)"
        )
        lines.append(
            row(
                f"full-image FHE, Concrete-ML CNN on {v['input']}",
                "encrypted logit",
                "the logit",
                f"{pct(v['accuracy_simulated'], 1)} ({v['simulated_pairs']} pairs, simulated)",
                time,
                f"{run['eval_keys_mb']:.0f} MB" if run else "—",
                f"{sum(run['ciphertext_in_kb_each']):.0f} / {run['ciphertext_out_kb']:.0f} KB" if run else "—",
            )
        )
    lines += ["", "![accuracy vs latency](../artifacts/bench/frontier.png)"]
    return lines


def encoders(data: Json) -> list[str]:
    lines = [
        f"LFW {data['variant']}, View 2, the security-levels protocol (10 identity-disjoint folds, levels set on "
        "the other 9 folds; look-alike groups drawn once, on the fused vectors, for every encoder). Heads: "
        "integer model (= FHE), configuration chosen on View 1. The dlib row uses "
        f"{'its 18 views' if data['dlib_tta'] == 'jitter' else 'its chip and mirror'}; fused uses dlib's chip and "
        f"mirror with dlib weight {data['fused_weight']['shipped']} (View 1's choice: "
        f"{data['fused_weight']['chosen_on_view1']}). Shipped by the rule: **{data['shipped_by_rule']}**.",
        "",
        *header(
            "encoder",
            "model",
            "balanced accuracy",
            "TAR @ 1e-2",
            "TAR @ 1e-3",
            "TAR @ 1e-4",
            "look-alike FMR @ 1e-3",
            "worst fold FMR / target @ 1e-4",
        ),
    ]
    for name, entry in data["encoders"].items():
        for model in ("clear", "accurate", "fast"):
            m = entry[model]
            label = "clear float" if model == "clear" else f"{model} head (d = {m['config']['dims']})"
            lines.append(
                row(
                    name,
                    label,
                    pct(m["balanced_accuracy"]),
                    *(pct(m[level]["tar"], 1) for level in ("1e-2", "1e-3", "1e-4")),
                    sci(m["1e-3"]["fmr_look_alike"]),
                    f"{m['1e-4']['fmr_worst_fold_over_target']:.1f}x",
                )
            )
    timing = data.get("client_ms_per_photo", {})
    lines += ["", *header("encoder", "client ms per photo (one thread)", "stages (ms)", "licence", "training data")]
    for name, facts in data["models"].items():
        t = timing.get(name, {})
        stages = ", ".join(f"{k} {v:g}" for k, v in t.get("stages_ms", {}).items())
        lines.append(
            row(name, f"{t['total_ms']:g}" if t else "—", stages or "—", facts["licence"], facts["training_data"])
        )
    lines += ["", f"Ship rule: {data['ship_rule']}"]
    if "ship_rule_history" in data:
        lines += ["", data["ship_rule_history"]]
    return lines


def enrolment(data: Json) -> list[str]:
    ks = ", ".join(map(str, data["several_photo_levels_set_on_ks"]))
    lines = [
        f"LFW {data['variant']}, View 2 images, {data['encoder']} encoder, the {data['point']} head refitted per "
        f"fold (integer model = FHE); {data['draws_per_person']} draws of K photos per person. Each level set out "
        "of fold on the other 9 folds, as the shipped heads carry it: the one-photo level on impostor pairs, the "
        f"several-photo level on impostor attempts of templates of {ks} photos pooled. The client uses the "
        "one-photo level for K = 1 and the several-photo level for K ≥ 2; the last two columns show why. At "
        "1e-4, K = 5 expects about 3 false matches per fold: its worst fold is noise-bound.",
        "",
        *header(
            "K",
            "people per fold",
            "impostor attempts",
            "level",
            "levels used",
            "TAR",
            "FMR (mean)",
            "worst fold ÷ target",
            "one-photo levels at this K: FMR",
            "worst fold ÷ target",
        ),
    ]
    for k, entry in data["by_k"].items():
        people = f"{min(entry['people_per_fold'])}-{max(entry['people_per_fold'])}"
        used = entry["levels_the_client_uses"]
        for level in ("1e-3", "1e-4"):
            m = entry["head_integer_model"][level]
            lines.append(
                row(
                    k,
                    people,
                    f"{entry['impostor_attempts']:,}",
                    level,
                    used.removesuffix("_levels").replace("_", "-"),
                    pct(m[used]["tar"], 1),
                    sci(m[used]["fmr"]),
                    f"{m[used]['fmr_worst_fold_over_target']:.2f}",
                    sci(m["one_photo_levels"]["fmr"]),
                    f"{m['one_photo_levels']['fmr_worst_fold_over_target']:.2f}",
                )
            )
    return lines


M = "artifacts/metrics/"
SECTIONS: tuple[Section, ...] = (
    Section(
        "Headline",
        "python -m training.results",
        (
            f"{M}lfw_fhe.json",
            f"{M}lfw_fhe_fast.json",
            f"{M}fhe_frontier.json",
            f"{M}security_levels.json",
            f"{M}fhe_head_bench.json",
            f"{M}app_path.json",
            f"{M}lfw_clear.json",
        ),
        headline,
    ),
    Section(
        "Client encoder accuracy, in clear",
        "make eval",
        (f"{M}lfw_clear.json", f"{M}lfw_clear_deepfunneled.json"),
        encoder_accuracy,
    ),
    Section(
        "Encoders side by side",
        "python -m training.encoders --lfw-dir PATH",
        (f"{M}encoders.json",),
        encoders,
    ),
    Section("Client encoder cost", "make bench", (f"{M}encoder_bench.json",), encoder_cost),
    Section("More client views", "python -m training.tta_views --lfw-dir PATH", (f"{M}tta_views.json",), tta_views),
    Section(
        "FHE head: accuracy and cost per dimension",
        "make train; python -m training.train_head --retime",
        (f"{M}fhe_frontier.json",),
        head_frontier,
    ),
    Section("Trained siamese head beside the hand-set head", "make train", (f"{M}fhe_frontier.json",), siamese),
    Section(
        "FHE head on deep-funneled LFW",
        "LFW_DEEPFUNNELED_DIR=... make train",
        (f"{M}fhe_frontier_deepfunneled.json",),
        deep_funneled_frontier,
    ),
    Section(
        "What the client's vector holds",
        "python -m training.ceilings --lfw-dir PATH",
        (f"{M}head_ceilings.json",),
        ceilings,
    ),
    Section(
        "An MLP over the distance features",
        "python -m training.mlp_check --lfw-dir PATH",
        (f"{M}mlp_check_view1.json",),
        mlp_check,
    ),
    Section("Real FHE over LFW", "make eval-fhe", (f"{M}lfw_fhe_fast.json", f"{M}lfw_fhe.json"), real_fhe),
    Section(
        "Shipped heads through the deployment classes",
        "python -m training.bench.head",
        (f"{M}fhe_head_bench.json",),
        shipped_heads,
    ),
    Section(
        "Direct circuit and Concrete-ML build",
        "python -m training.bench.engines --points fast accurate PATH/head.json",
        (f"{M}head_engines.json",),
        head_engines,
    ),
    Section(
        "Security levels: FMR and FNMR per level",
        "python -m training.security_levels",
        (f"{M}security_levels.json", f"{M}security_levels_deepfunneled.json"),
        security_levels,
    ),
    Section(
        "Strangers who look alike", "python -m training.security_levels", (f"{M}security_levels.json",), look_alike
    ),
    Section(
        "Identification (1:N) per level",
        "python -m training.security_levels",
        (f"{M}security_levels.json",),
        identification,
    ),
    Section(
        "Real FHE at the level thresholds",
        "python -m training.security_levels --fhe POINT",
        (f"{M}security_levels_fhe_accurate.json", f"{M}security_levels_fhe_fast.json"),
        levels_fhe,
    ),
    Section(
        "What the level element costs",
        "python -m training.bench.levels",
        (f"{M}security_levels_cost.json",),
        levels_cost,
    ),
    Section(
        "Stricter heads for 1e-3", "python -m training.strict_refit", (f"{M}security_levels_refit.json",), strict_refit
    ),
    Section(
        "Enrolment from several photos",
        "python -m training.enrolment --lfw-dir PATH",
        (f"{M}enrolment.json",),
        enrolment,
    ),
    Section("The app, photo to verdict", "python -m training.bench.app_path", (f"{M}app_path.json",), app_path),
    Section(
        "Service load",
        "make bench-service; python -m training.bench.service_auth",
        (f"{M}service_load.json", f"{M}service_load_before_auth.json", f"{M}service_auth.json"),
        service_load,
    ),
    Section(
        "Identification scaling and batching", "make bench-identify", (f"{M}identify_scaling.json",), identify_scaling
    ),
    Section(
        "Benchmark: FHE head, CKKS, full-image FHE",
        "python -m training.bench.benchmark --lfw-dir PATH",
        ("artifacts/bench/benchmark.json", f"{M}fhe_head_bench.json", f"{M}lfw_fhe.json", f"{M}lfw_fhe_fast.json"),
        benchmark,
    ),
)


def anchor(title: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    kept = "".join(c for c in title.lower() if c.isalnum() or c in " -_")
    return kept.replace(" ", "-")


def render(root: Path = ROOT, sections: Sequence[Section] = SECTIONS) -> str:
    lines = [
        "# Results",
        "",
        "Generated by `python -m training.results` from the JSON files under `artifacts/`: do not edit by hand",
        "(`python -m training.results --check` and `tests/test_results_doc.py` fail when this file is stale).",
        "What each protocol means and why: [training and evaluation](training-and-evaluation.md),",
        "[security levels](security-levels.md), [scaling](scaling.md), [benchmark](benchmark.md). All on the",
        "project machine (2-core x86_64 CPU, no GPU) unless a section says otherwise.",
        "",
        *(f"- [{s.title}](#{anchor(s.title)})" for s in sections),
        "",
    ]
    for section in sections:
        lines += section.lines(root)
    return "\n".join(lines).rstrip() + "\n"


def readme_with_table(readme: str, root: Path = ROOT) -> str:
    """README.md with its results table (between BEGIN and END) replaced by the headline section's."""
    start, end = readme.index(BEGIN) + len(BEGIN), readme.index(END)
    data = [json.loads((root / s).read_text()) for s in SECTIONS[0].sources]
    table = "\n".join(headline(*data, base="docs/results.md"))
    return readme[:start] + "\n" + table + "\n" + readme[end:]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.results", description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if docs/results.md or README.md's table is stale")
    args = parser.parse_args(argv)
    wanted = {RESULTS: render(), README: readme_with_table(README.read_text())}
    stale = [p for p, text in wanted.items() if not p.exists() or p.read_text() != text]
    if args.check:
        for path in stale:
            print(f"{path.relative_to(ROOT)} is stale: run python -m training.results", file=sys.stderr)
        return 1 if stale else 0
    for path in stale:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(wanted[path])
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
