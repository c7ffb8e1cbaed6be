"""Does a small MLP over the per-dimension distance features pay for its extra bootstraps? (View 1 only)

    python -m training.mlp_check --lfw-dir PATH [--dims 16 64]

The server-side interaction of the shipped heads is `sum_i f_i(delta_i) < threshold`: one lookup per
dimension, a lookup-free sum, one comparison. An MLP over the same features f_i (d -> h -> 1) costs h more
lookups on wide accumulators (each hidden unit's activation) plus their rounding. Its best case is bounded
here in clear float, without any quantisation of the hidden layer: if even that does not beat the plain
sum on View 1, the encrypted MLP cannot. Features = the View 1-selected hand-set head's integer table values
(what the circuit sums); fitted on pairsDevTrain, scored on pairsDevTest, seeds averaged.
Writes artifacts/metrics/mlp_check_view1.json.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np
import torch
from torch import nn

from training.head_fit import accuracy_of, fit_head
from training.lfw import open_lfw_for_cli
from training.paths import METRICS
from training.train_head import embed_lfw, select_on_view1

HIDDEN = (4, 16)
SEEDS = (0, 1, 2)


def features(head, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(n, d) integer per-dimension values f_i(delta_i) the circuit sums."""
    delta = head.quantize(a) - head.quantize(b) + head.offset
    return head.tables[np.arange(head.dims), delta].astype(np.float64)


def fit_mlp(x: np.ndarray, same: np.ndarray, hidden: int, seed: int, steps: int = 400) -> nn.Module:
    torch.manual_seed(seed)
    scale = x.std(axis=0) + 1e-6
    net = nn.Sequential(nn.Linear(x.shape[1], hidden), nn.ReLU(), nn.Linear(hidden, 1)).double()
    tx, ty = torch.tensor(x / scale), torch.tensor(same, dtype=torch.float64)
    optimiser = torch.optim.Adam(net.parameters(), lr=0.01, weight_decay=1e-4)
    for _ in range(steps):
        optimiser.zero_grad()
        loss = nn.functional.binary_cross_entropy_with_logits(net(tx).squeeze(-1), ty)
        loss.backward()
        optimiser.step()
    net.scale = scale  # type: ignore[attr-defined]
    return net


def mlp_accuracy(net: nn.Module, x: np.ndarray, same: np.ndarray) -> float:
    with torch.no_grad():
        logits = net(torch.tensor(x / net.scale)).squeeze(-1).numpy()  # type: ignore[attr-defined]
    return float(np.mean((logits > 0) == same))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lfw-dir", help="LFW root (default: $LFW_DIR)")
    parser.add_argument("--dims", type=int, nargs="+", default=[16, 64])
    args = parser.parse_args(argv)
    lfw = open_lfw_for_cli(args.lfw_dir)
    data, _ = embed_lfw(lfw)
    dev_train, dev_test = lfw.view1()
    a, b, same, images = data.arrays(dev_train)
    ta, tb, tsame, _ = data.arrays(dev_test)
    rows = []
    for dims in args.dims:
        config, _ = select_on_view1(data, dev_train, dev_test, dims)
        head = fit_head(config, images, a, b, same)
        x, tx = features(head, a, b), features(head, ta, tb)
        row = {"dims": dims, "head": config.to_dict(), "sum_then_threshold": accuracy_of(head, ta, tb, tsame)}
        for hidden in HIDDEN:
            scores = [mlp_accuracy(fit_mlp(x, same, hidden, seed), tx, tsame) for seed in SEEDS]
            row[f"mlp_h{hidden}_float"] = {"mean": float(np.mean(scores)), "per_seed": scores}
            row[f"mlp_h{hidden}_extra_lookups_at_least"] = hidden
        rows.append(row)
        print(json.dumps(row), flush=True)
    report = {
        "protocol": __doc__.strip().split("\n\n", 1)[1],
        "view1_train_pairs": len(dev_train),
        "view1_test_pairs": len(dev_test),
        "rows": rows,
    }
    METRICS.mkdir(parents=True, exist_ok=True)
    (METRICS / "mlp_check_view1.json").write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
