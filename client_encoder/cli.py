"""Command line: `python -m client_encoder embed PHOTO...` and `python -m client_encoder compare A B`."""

from __future__ import annotations

import argparse
import json
import logging
import sys

from client_encoder.align import TTA_VIEWS
from client_encoder.encoder import FaceEncoder, distance
from privface.errors import InputError, PrivfaceError

_INPUT_ERRORS = (InputError, OSError)


def _embed(encoder: FaceEncoder, paths: list[str]) -> int:
    results, failed = [], 0
    for path in paths:
        try:
            results.append({"path": path, **encoder.encode(path).to_dict()})
        except _INPUT_ERRORS as err:
            failed += 1
            results.append({"path": path, "error": str(err), "error_type": type(err).__name__})
    json.dump(results, sys.stdout, indent=1)
    sys.stdout.write("\n")
    return 1 if failed else 0


def _compare(encoder: FaceEncoder, a: str, b: str, as_json: bool) -> int:
    try:
        ea, eb = encoder.encode(a), encoder.encode(b)
    except _INPUT_ERRORS as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    d = distance(ea.embedding, eb.embedding)
    same = d < encoder.threshold
    result = {
        "a": a,
        "b": b,
        "distance": round(d, 6),
        "threshold": encoder.threshold,
        "same_person": bool(same),
        "tta": encoder.tta,
        "notes": [n for n in (ea.note, eb.note) if n],
        "mode": "clear (not private: embeddings and distance computed in the open)",
    }
    if as_json:
        print(json.dumps(result, indent=1))
    else:
        verdict = "SAME person" if same else "DIFFERENT people"
        relation = "<" if same else ">="
        print(f"{verdict}: distance {d:.4f} {relation} threshold {encoder.threshold:.4f} (tta={encoder.tta}, clear)")
        for note in result["notes"]:
            print(f"note: {note}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m client_encoder", description="Offline face encoder (ONNX Runtime)."
    )
    parser.add_argument(
        "--tta", choices=sorted(TTA_VIEWS), default="jitter", help="test-time augmentation (default: jitter)"
    )
    parser.add_argument("--model", help="ONNX encoder file (default: the shipped one)")
    parser.add_argument("--quiet", action="store_true", help="no warnings on stderr")
    sub = parser.add_subparsers(dest="command", required=True)
    embed = sub.add_parser("embed", help="print 128-d embeddings of photos as JSON")
    embed.add_argument("photos", nargs="+")
    compare = sub.add_parser("compare", help="clear distance and verdict for two photos")
    compare.add_argument("a")
    compare.add_argument("b")
    compare.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR if args.quiet else logging.WARNING, format="%(levelname)s: %(message)s")
    try:
        encoder = FaceEncoder(model_path=args.model, tta=args.tta)
        if args.command == "embed":
            return _embed(encoder, args.photos)
        return _compare(encoder, args.a, args.b, args.json)
    except PrivfaceError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
