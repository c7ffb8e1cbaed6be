"""1:N identification with the head: one probe against N enrolled templates, sequential server runs."""

from __future__ import annotations

import time

import numpy as np

from training.bench.shipped import keyed, near_mean

ONE_TO_N = (1, 2, 4, 8)


def _measured(client, server, keys, probe, gallery: list, sizes: tuple[int, ...]) -> list[dict]:
    rows = []
    for n in sizes:
        t0, c0 = time.perf_counter(), time.process_time()
        bits = [client.decrypt(server.run(t, probe, keys)) for t in gallery[:n]]
        rows.append(
            {"n": n, "latency_s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0, "decrypted": len(bits)}
        )
    return rows


def _estimated(server, keys, probe, gallery: list, sizes: tuple[int, ...]) -> list[dict]:
    runs, cpu = [], []
    for t in gallery[:3]:
        c0 = time.process_time()
        server.run(t, probe, keys)
        cpu.append(time.process_time() - c0)
        runs.append(server.last_run_s)
    one, one_cpu = float(np.median(runs)), float(np.median(cpu))
    return [{"n": n, "latency_s": one * n, "cpu_s": one_cpu * n} for n in sizes]


def one_to_n(point: str = "fast", sizes: tuple[int, ...] = ONE_TO_N, estimate_point: str | None = "accurate") -> dict:
    """N sequential server runs (one probe against N templates) of `point`, measured; and the other
    point as one measured run x N (labelled estimate)."""
    out: dict = {}
    rng = np.random.default_rng(0)
    for name, measured in ((point, True), (estimate_point, False)):
        if name is None:
            continue
        client, server, keys = keyed(name)
        probe = client.encrypt(near_mean(client, rng))
        gallery = [client.encrypt(near_mean(client, rng)) for _ in range(max(sizes))]
        server.run(gallery[0], probe, keys)  # warm-up
        if measured:
            rows = _measured(client, server, keys, probe, gallery, sizes)
            kind = "measured: N sequential FHEServer.run + decrypt"
        else:
            rows = _estimated(server, keys, probe, gallery, sizes)
            kind = "estimate: median of 3 measured runs x N"
        out[name] = {"dims": server.meta["dims"], "kind": kind, "rows": rows}
    return out
