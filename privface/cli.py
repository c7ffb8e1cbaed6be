"""Command line client of the verification server (the secret key never leaves this machine).

    python -m privface compare A.jpg B.jpg
    python -m privface enrol PHOTO --name NAME
    python -m privface verify PHOTO --name NAME
    python -m privface identify PHOTO
    python -m privface list | delete NAME | forget

Server: --url or $PRIVFACE_URL (default http://127.0.0.1:8000). Keys: --key-dir (default
~/.privface/keys). Exit status: 0 on success (compare/verify: same person), 1 on an error,
2 when compare/verify decrypts "different people".
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from tqdm import tqdm

from fhe_head.artifacts import DEFAULT_POINT, POINTS
from privface.errors import PrivfaceError
from privface.resources import DEFAULT_KEY_DIR

DIFFERENT = 2


def _client(args: argparse.Namespace):
    from client_encoder.encoder import FaceEncoder
    from privface.client import VerificationClient

    return VerificationClient(args.url, args.point, args.key_dir, encoder=FaceEncoder(tta=args.tta))


def _connect(client) -> None:
    bar = None

    def progress(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, unit="B", unit_scale=True, desc="uploading evaluation keys", file=sys.stderr)
        bar.update(done - bar.n)

    print("generating or loading keys...", file=sys.stderr)
    client.connect(progress)
    if bar is not None:
        bar.close()
    timings = ", ".join(f"{k} {v:.2f} s" for k, v in client.timings.items())
    print(f"key id {client.key_id} ({timings})", file=sys.stderr)


def _print_result(result, as_json: bool) -> int:
    if as_json:
        print(json.dumps(result.to_dict(), indent=1))
    else:
        answer = "Same person" if result.same else "Different people"
        print(f"{answer} (decrypted here; server FHE {result.fhe_s:.3f} s, total {result.total_s:.2f} s)")
    return 0 if result.same else DIFFERENT


def run(args: argparse.Namespace) -> int:

    try:
        with _client(args) as client:
            _connect(client)
            if args.command == "compare":
                return _print_result(client.compare(args.a, args.b), args.json)
            if args.command == "enrol":
                record = client.enrol(args.photo, args.name, replace=args.replace)
                print(f"enrolled {record['name']!r} ({record['size']} bytes of ciphertext stored on the server)")
                return 0
            if args.command == "verify":
                return _print_result(client.verify(args.photo, args.name), args.json)
            if args.command == "identify":
                matches = client.identify(args.photo)
                if not matches:
                    print("no templates enrolled under this key")
                for name, same in matches:
                    print(f"{'MATCH' if same else '-    '} {name}")
                print(f"{len(matches)} templates, server wall {client.timings['identify_server_wall_s']:.2f} s")
                return 0
            if args.command == "list":
                print(json.dumps(client.templates(), indent=1))
                return 0
            if args.command == "delete":
                client.delete(args.name)
                print(f"deleted {args.name!r}")
                return 0
            client.forget_me()
            print("the server no longer holds your keys or templates")
            return 0
    except PrivfaceError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except OSError as err:
        print(f"error: {err.strerror or err}: {err.filename or ''}".rstrip(": "), file=sys.stderr)
        return 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m privface", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", default=os.environ.get("PRIVFACE_URL", "http://127.0.0.1:8000"))
    parser.add_argument("--point", default=DEFAULT_POINT, choices=POINTS)
    parser.add_argument("--key-dir", default=str(DEFAULT_KEY_DIR), help="where the secret key is kept (mode 0600)")
    parser.add_argument("--tta", default="jitter", choices=("none", "flip", "jitter"))
    sub = parser.add_subparsers(dest="command", required=True)
    compare = sub.add_parser("compare", help="compare two photos under encryption")
    compare.add_argument("a")
    compare.add_argument("b")
    compare.add_argument("--json", action="store_true", help="print the result as JSON")
    enrol = sub.add_parser("enrol", help="store an encrypted template on the server")
    enrol.add_argument("photo")
    enrol.add_argument("--name", required=True)
    enrol.add_argument("--replace", action="store_true", help="overwrite a template of the same name")
    verify = sub.add_parser("verify", help="check a photo against an enrolled template")
    verify.add_argument("photo")
    verify.add_argument("--name", required=True)
    verify.add_argument("--json", action="store_true", help="print the result as JSON")
    identify = sub.add_parser("identify", help="check a photo against every enrolled template")
    identify.add_argument("photo")
    sub.add_parser("list", help="list enrolled templates")
    delete = sub.add_parser("delete", help="delete an enrolled template")
    delete.add_argument("name")
    sub.add_parser("forget", help="delete your keys and templates from the server")
    return parser


def main(argv: list[str] | None = None) -> int:
    return run(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
