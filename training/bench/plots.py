"""The benchmark's plots: accuracy vs latency of every system, the head against d, 1:N identification."""

from __future__ import annotations

from pathlib import Path


def _save(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _frontier(ax, result: dict) -> None:
    """Accuracy against server latency: the head's d curve and points, CKKS, the full-image models."""
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


def _latency_vs_dims(ax, fr: list[dict]) -> None:
    ax.plot([p["dims"] for p in fr], [p["server_run_s_median"] for p in fr], "o-", label="server run")
    ax2 = ax.twinx()
    ax2.plot([p["dims"] for p in fr], [100 * p["accuracy_simulated"] for p in fr], "s--", color="C1", label="accuracy")
    ax.set_xlabel("embedding dimension d (4-bit)")
    ax.set_ylabel("server run (s)")
    ax2.set_ylabel("LFW accuracy (%)", color="C1")


def _one_to_n(ax, one: dict) -> None:
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


def plot(result: dict, out_dir: Path) -> list[str]:
    """frontier.png, latency_vs_dims.png and one_to_n.png (those with data) in `out_dir`; their names."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from training.machine import machine_label

    label = machine_label(result["machine"])
    fig, ax = plt.subplots(figsize=(6, 4))
    _frontier(ax, result)
    ax.set_title(f"Accuracy vs latency\n{label}", fontsize=9)
    ax.legend(fontsize=6)
    ax.grid(alpha=0.3)
    _save(fig, out_dir / "frontier.png")
    written = ["frontier.png"]
    if result.get("frontier"):
        fig, ax = plt.subplots(figsize=(5, 3.5))
        _latency_vs_dims(ax, result["frontier"])
        ax.set_title(f"FHE head vs d\n{label}", fontsize=9)
        _save(fig, out_dir / "latency_vs_dims.png")
        written.append("latency_vs_dims.png")
    if result.get("one_to_n"):
        fig, ax = plt.subplots(figsize=(5, 3.5))
        _one_to_n(ax, result["one_to_n"])
        ax.set_title(f"1:N identification, sequential\n{label}", fontsize=9)
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
        _save(fig, out_dir / "one_to_n.png")
        written.append("one_to_n.png")
    return written
