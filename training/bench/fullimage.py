"""The full-image FHE baseline's model: a small siamese CNN over two aligned grey face crops, in TFHE.

A VGG-style Brevitas CNN (3x3 convolutions, ReLU, 2x2 average pooling, low-bit weights and
activations) shared by both faces, then [f(a), f(b)] -> MLP (or |f(a) - f(b)| -> linear) -> one logit
("same person" when > 0). Each face is a separate encrypted input, as in the head. Here: the model,
its short quantisation-aware training, compilation with Concrete-ML, simulation and one real FHE run.
`python -m training.bench.baseline` runs it on LFW.
"""

from __future__ import annotations

import os
import time

import numpy as np


def shrink(crops: np.ndarray, size: int) -> np.ndarray:
    """(n, S, S) -> (n, size, size) by block averaging (S a multiple of size)."""
    factor = crops.shape[-1] // size
    if factor == 1:
        return crops
    n, s = crops.shape[0], crops.shape[-1]
    return crops.reshape(n, s // factor, factor, s // factor, factor).mean(axis=(2, 4))


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
