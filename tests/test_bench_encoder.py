import json

from training.bench.encoder import main


def test_benchmark_writes_latency_size_and_fidelity(tmp_path, monkeypatch):
    monkeypatch.delenv("LFW_DIR", raising=False)  # the bundled photo: quick and always there
    out = tmp_path / "bench.json"
    assert main(["--runs", "2", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert set(report["latency"]) == {"none", "flip", "jitter"}
    assert report["latency"]["jitter"]["views"] == 18
    assert all(r["total_ms_median"] > 0 for r in report["latency"].values())
    assert 20 < report["onnx_mb"] < 30
    assert report["fidelity_vs_dlib"]["max_abs_diff"] <= 1e-4
