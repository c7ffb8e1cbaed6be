"""Run the verification server.

    python -m fhe_head.service --host 127.0.0.1 --port 8000 --data-dir ~/.privface/server

Evaluation keys, owners' public signing keys and encrypted templates live in the data directory
(0700) and survive restarts. Limits: `--limit max_keys=8 --limit max_identify_templates=32 ...`
(names and defaults: fhe_head/service/app.py, class Limits). Interactive API docs: http://HOST:PORT/docs.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

import uvicorn

from fhe_head.artifacts import POINTS
from privface_core.errors import PrivfaceError
from privface_core.exitcodes import INTERRUPTED
from privface_core.settings import settings

# Keep-alive connections idle longer than this are closed; connections beyond the concurrency
# limit get 503 rather than queueing without bound (new connections: fhe_head/service/connections.py).
KEEP_ALIVE_S = 5
MAX_CONNECTIONS = 256


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1", help="0.0.0.0 to accept other machines")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--data-dir", default="~/.privface/server", help="keys + SQLite template store")
    parser.add_argument("--points", nargs="+", default=list(POINTS), choices=POINTS, help="head points to serve")
    parser.add_argument("--workers", type=int, default=None, help="FHE runs at once (default: one per core)")
    parser.add_argument("--limit", action="append", default=[], metavar="NAME=VALUE", help="override a limit")
    parser.add_argument(
        "--ray-address",
        default=settings().ray_address,
        help="run the FHE work on this Ray cluster (its head's HOST:PORT; env PRIVFACE_RAY_ADDRESS); "
        "default: this machine's cores",
    )
    parser.add_argument(
        "--trusted-proxy",
        default="",
        metavar="ADDRESSES",
        help="comma-separated addresses of reverse proxies whose X-Forwarded-For names the client (default: none; "
        "the per-address limits then count each connection's own address, a proxy's included)",
    )
    parser.add_argument("--access-log", action="store_true", help="log every request line (off by default)")
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    os.umask(0o077)  # everything the server writes (keys, SQLite and its journal) is private to its user
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        from fhe_head.service.app import create_app
        from fhe_head.service.connections import client_address, guarded_protocol
        from fhe_head.service.state import Limits

        limits = Limits.parse(args.limit)
        app = create_app(
            args.data_dir, points=tuple(args.points), workers=args.workers, limits=limits, ray_address=args.ray_address
        )
        proxies = frozenset(client_address(a.strip()) for a in args.trusted_proxy.split(",") if a.strip())
        uvicorn.run(
            app,
            http=guarded_protocol(limits.header_timeout_s, limits.max_connections_per_address, exempt=proxies),
            host=args.host,
            port=args.port,
            log_level=args.log_level,
            access_log=args.access_log,
            server_header=False,
            timeout_keep_alive=KEEP_ALIVE_S,
            limit_concurrency=MAX_CONNECTIONS,
            # uvicorn believes X-Forwarded-For from 127.0.0.1 by default: anyone on loopback could then pick
            # the address the per-address limits count.
            proxy_headers=bool(args.trusted_proxy),
            forwarded_allow_ips=args.trusted_proxy or None,
        )
    except (PrivfaceError, ValueError) as err:
        print(f"privface-server: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C before uvicorn's own handlers are in (circuits loading, start-up)
        print("privface-server: interrupted", file=sys.stderr)
        return INTERRUPTED
    return 0


if __name__ == "__main__":
    sys.exit(main())
