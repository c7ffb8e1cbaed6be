"""Run the verification server.

    python -m fhe_head.service --host 127.0.0.1 --port 8000 --data-dir ~/.privface/server

Evaluation keys and encrypted templates live in the data directory and survive restarts.
Interactive API docs: http://HOST:PORT/docs.
"""

from __future__ import annotations

import argparse
import sys

import uvicorn

from fhe_head.artifacts import POINTS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1", help="0.0.0.0 to accept other machines")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--data-dir", default="~/.privface/server", help="keys + SQLite template store")
    parser.add_argument("--points", nargs="+", default=list(POINTS), choices=POINTS, help="head points to serve")
    parser.add_argument("--workers", type=int, default=None, help="FHE runs at once (default: one per core)")
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    from fhe_head.service.api import create_app

    app = create_app(args.data_dir, tuple(args.points), args.workers)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
    return 0


if __name__ == "__main__":
    sys.exit(main())
