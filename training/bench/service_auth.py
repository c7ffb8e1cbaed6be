"""What request signing costs: the owner's signature and the server's check, per request.

    python -m training.bench.service_auth [--repeats 2000]

Times, in one process and interleaved, what an authenticated request adds on each side: the
client's SHA-256 of the body and Ed25519 signature (privface_core.auth.Signer.headers), and the
server's timestamp/nonce checks, SHA-256 and signature verification (privface_core.auth.verify), over a
body the size of a `fast`-point verification (two ciphertexts in base64 JSON). Writes medians and
p95 to artifacts/metrics/service_auth.json; compare them with a verification's latency in
service_load.json (the same file's figures are quoted in the README).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time

import numpy as np

from privface_core import auth
from training.machine import machine_info
from training.paths import METRICS

OUT = METRICS / "service_auth.json"
BODY_BYTES = 1400  # two 500-byte fast-point ciphertexts, base64, in JSON
SERVER_ID = "0" * 32  # the audience a server's /version names


def measure(repeats: int) -> dict:
    signer = auth.Signer.generate()
    nonces = auth.NonceCache()
    key_id = "0" * auth.KEY_ID_CHARS
    body = os.urandom(BODY_BYTES)
    sign_s, verify_s = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        headers = signer.headers("POST", "/v1/verify", "", hashlib.sha256(body).digest(), key_id, audience=SERVER_ID)
        signed = time.perf_counter()
        digest = hashlib.sha256(body).digest()
        auth.verify(signer.public_key, headers, "POST", "/v1/verify", "", key_id, digest, nonces, SERVER_ID)
        verified = time.perf_counter()
        sign_s.append(signed - start)
        verify_s.append(verified - signed)
    ms = {"sign": np.array(sign_s) * 1e3, "verify": np.array(verify_s) * 1e3}
    return {name: {"median_ms": float(np.median(v)), "p95_ms": float(np.percentile(v, 95))} for name, v in ms.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=2000)
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args(argv)
    report = {
        "command": "python -m training.bench.service_auth " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": machine_info(),
        "conditions": "2 cores shared with other jobs: absolute times are noisy, sign and verify interleaved",
        "scheme": "Ed25519 (cryptography) over method, path, query, key id, timestamp, nonce, body SHA-256",
        "body_bytes": BODY_BYTES,
        "repeats": args.repeats,
        **measure(args.repeats),
    }
    with open(args.out, "w") as out:
        out.write(json.dumps(report, indent=1) + "\n")
    print(json.dumps({k: report[k] for k in ("sign", "verify")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
