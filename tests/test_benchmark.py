"""Benchmark (issue #6): the baseline CNN compiles for FHE, the CKKS peer computes the right distance,
the report writer turns a result into JSON, Markdown and plots. Fast: no real FHE run here."""

from __future__ import annotations

import json

import numpy as np
import pytest

from training.bench.report import headline, write_markdown, write_outputs


def _synthetic_result(with_baseline: bool = True) -> dict:
    cost = {
        "keygen_s_median": 3.0,
        "encrypt_one_embedding_s_median": 0.01,
        "server_run_s_median": 0.25,
        "decrypt_s_median": 0.002,
        "eval_keys_mb": 27.0,
        "ciphertext_in_kb": 0.5,
        "ciphertext_out_kb": 16.6,
    }
    result = {
        "machine": {"cpu": "Test CPU", "cores": 2},
        "generated": "2026-01-01 00:00 UTC",
        "head": {
            "points": {
                "fast": {
                    "dims": 10,
                    "n_bits": 4,
                    "pbs": 11,
                    "cost": cost,
                    "cost_source": "synthetic",
                    "accuracy_simulated": 0.97,
                    "accuracy_source": "synthetic",
                }
            }
        },
        "frontier": [
            {
                "name": "d16",
                "dims": 16,
                "n_bits": 4,
                "accuracy_simulated": 0.978,
                "server_run_s_median": 0.45,
                "programmable_bootstrap_count": 20,
                "eval_keys_mb": 47.5,
            }
        ],
        "ckks": {"available": False, "why": "synthetic"},
        "one_to_n": {"fast": {"dims": 10, "kind": "measured: test", "rows": [{"n": 1, "latency_s": 0.3}]}},
        "baseline": None,
    }
    if with_baseline:
        result["baseline"] = {
            "protocol": "synthetic",
            "concrete_ml": "1.9.0",
            "variants": {
                "big_32": {
                    "size": 32,
                    "channels": [8, 16, 32],
                    "weight_activation_bits": 3,
                    "parameters": 1000,
                    "name": "big_32",
                    "epochs": 3,
                    "train_s": 600.0,
                    "accuracy_clear_fake_quant": 0.7,
                    "accuracy_simulated": 0.69,
                    "simulated_pairs": 600,
                    "programmable_bootstrap_count": 36000,
                    "max_bit_width": 8,
                    "pbs_per_parameter": {"p2048": 36000},
                    "size_of_bootstrap_keys_mb": 600.0,
                    "size_of_keyswitch_keys_mb": 100.0,
                    "size_of_inputs_kb": 50.0,
                    "size_of_outputs_kb": 10.0,
                    "estimate": {
                        "server_run_s_by_pbs": 250.0,
                        "server_run_s_by_complexity": 300.0,
                        "per_pbs_s_measured": 0.007,
                        "reference": "small_16",
                    },
                }
            },
        }
    return result


def test_headline_ratio_is_baseline_over_head() -> None:
    rows = headline(_synthetic_result())["full_image_over_head"]
    assert len(rows) == 1
    assert rows[0]["ratio"] == pytest.approx(250.0 / 0.25)
    assert rows[0]["baseline_kind"] == "estimate"


def test_writer_makes_json_markdown_and_plots(tmp_path) -> None:
    paths = write_outputs(_synthetic_result(), tmp_path)
    names = {p.name for p in paths}
    assert {"benchmark.json", "benchmark.md", "frontier.png", "one_to_n.png"} <= names
    saved = json.loads((tmp_path / "benchmark.json").read_text())
    assert saved["headline"]["full_image_over_head"][0]["ratio"] == pytest.approx(1000.0)
    md = (tmp_path / "benchmark.md").read_text()
    assert "Test CPU, 2 cores" in md and "**1000x**" in md and "estimate" in md
    assert all((tmp_path / n).stat().st_size < 300_000 for n in names if n.endswith(".png"))


def test_markdown_without_baseline_says_how_to_run_it() -> None:
    result = _synthetic_result(with_baseline=False)
    result["headline"] = headline(result)
    assert "python -m training.bench.baseline" in write_markdown(result)


def test_ckks_distance_matches_clear() -> None:
    pytest.importorskip("tenseal", reason="tenseal not installed (pip install tenseal)")
    from training.bench.ckks import ckks_context, ckks_decrypt, ckks_encrypt, ckks_server_distance, public_context

    rng = np.random.default_rng(0)
    a, b = rng.normal(scale=0.1, size=128), rng.normal(scale=0.1, size=128)
    ctx = ckks_context()
    server_ctx = public_context(ctx)
    assert not server_ctx.has_secret_key()
    score = ckks_decrypt(ctx, ckks_server_distance(server_ctx, ckks_encrypt(ctx, a), ckks_encrypt(ctx, b)))
    assert score == pytest.approx(float(np.sum((a - b) ** 2)), abs=1e-4)


def test_baseline_model_shapes_and_fhe_simulation() -> None:
    torch = pytest.importorskip("torch")
    from training.bench.fullimage import build_model, circuit_stats, compile_model, normalise, shrink

    crops = np.random.default_rng(0).integers(0, 256, size=(24, 8, 8)).astype(np.uint8)
    x = normalise(shrink(crops.astype(np.float32), 4))
    assert x.shape == (24, 1, 4, 4) and np.allclose(x.mean(axis=(1, 2, 3)), 0, atol=1e-4)
    torch.manual_seed(0)
    model = build_model(size=4, channels=(2,), bits=2, emb=2)
    model.eval()
    with torch.no_grad():
        out = model(torch.from_numpy(x[:12]), torch.from_numpy(x[12:]))
    assert out.shape == (12, 1)
    qmodule = compile_model(model, x[:12], x[12:], rounding_bits=4, global_p_error=1e-2)
    stats = circuit_stats(qmodule.fhe_circuit)
    # Every conv activation of both faces is a table lookup in the compiled graph.
    assert stats["table_lookup_elements_in_graph"] >= 2 * 2 * 4 * 4, stats
    assert stats["programmable_bootstrap_count"] > 0, stats
    simulated = np.asarray(qmodule.forward(x[:2], x[12:14], fhe="simulate"))
    assert simulated.shape == (2, 1)


def test_training_pairs_balanced_and_person_disjoint(lfw_dir) -> None:
    from training.bench.baseline import training_pairs
    from training.lfw import LFW

    pairs = LFW(lfw_dir).view2()
    train = [p for p in pairs if p.fold != 9]
    test_people = {q.parent.name for p in pairs if p.fold == 9 for q in (p.left, p.right)}
    extra = training_pairs(train, np.random.default_rng(0), 200)
    assert len(extra) == len(train) + 200
    added = extra[len(train) :]
    assert sum(s for _, _, s in added) == 100
    assert all(a.parent.name == b.parent.name for a, b, s in added if s)
    assert not {q.parent.name for a, b, _ in added for q in (a, b)} & test_people
