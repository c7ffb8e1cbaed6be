"""Command line: `python -m client_encoder embed PHOTO...` and `python -m client_encoder compare A B`.

Clear (not private) encoder tools. Options go before or after the command. Exit status, as for
`python -m privface`: 0 same person / done; 1 failed (a photo that cannot be used, no face, a model
error); 2 usage error; 3 different people; 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from client_encoder.align import TTA_VIEWS
from client_encoder.encoder import DEFAULT_ENCODER, ENCODERS, FaceEncoder, distance
from privface_core.errors import InputError, NoFaceError, PrivfaceError
from privface_core.exitcodes import FAILED, HELP, INTERRUPTED, NEGATIVE, OK

_INPUT_ERRORS = (InputError, OSError)


def _encode(encoder: FaceEncoder, path: str):
    """The photo's encoding; a no-face error names the file (the others already do)."""
    try:
        return encoder.encode(path)
    except NoFaceError as err:
        raise NoFaceError(f"{path}: {err}") from err


def _embed(encoder: FaceEncoder, paths: list[str]) -> int:
    results, failed = [], 0
    for path in paths:
        try:
            results.append({"path": path, **_encode(encoder, path).to_dict()})
        except _INPUT_ERRORS as err:
            failed += 1
            results.append({"path": path, "error": str(err), "error_type": type(err).__name__})
            print(f"error: {err}", file=sys.stderr)  # a script may read only stdout's JSON, a person only this
    json.dump(results, sys.stdout, indent=1)
    sys.stdout.write("\n")
    return FAILED if failed else OK


def _compare(encoder: FaceEncoder, a: str, b: str, as_json: bool) -> int:
    try:
        ea, eb = _encode(encoder, a), _encode(encoder, b)
    except _INPUT_ERRORS as err:
        print(f"error: {err}", file=sys.stderr)
        return FAILED
    d = distance(ea.embedding, eb.embedding)
    same = d < encoder.threshold
    result = {
        "a": a,
        "b": b,
        "distance": round(d, 6),
        "threshold": encoder.threshold,
        "same_person": bool(same),
        "encoder": encoder.encoder,
        "tta": encoder.tta,
        "notes": [n for n in (ea.note, eb.note) if n],
        "mode": "clear (not private: embeddings and distance computed in the open)",
    }
    if as_json:
        print(json.dumps(result, indent=1))
    else:
        verdict = "SAME person" if same else "DIFFERENT people"
        relation = "<" if same else ">="
        print(f"{verdict}: distance {d:.4f} {relation} threshold {encoder.threshold:.4f} ({encoder.encoder}, clear)")
        for note in result["notes"]:
            print(f"note: {note}")
    return OK if same else NEGATIVE


def _options(parser: argparse.ArgumentParser, suppress: bool) -> None:
    """Global options; on a subcommand they default to SUPPRESS, so they may come after it too."""

    def default(value):
        return argparse.SUPPRESS if suppress else value

    parser.add_argument(
        "--encoder",
        choices=ENCODERS,
        default=default(DEFAULT_ENCODER),
        help=f"face encoder: sface (YuNet + SFace), dlib, or fused (both) (default: {DEFAULT_ENCODER})",
    )
    parser.add_argument(
        "--tta",
        choices=sorted(TTA_VIEWS),
        default=default("jitter"),
        help="dlib's test-time augmentation (default: jitter)",
    )
    parser.add_argument("--model", default=default(None), help="dlib's ONNX encoder file (default: the shipped one)")
    parser.add_argument("--quiet", action="store_true", default=default(False), help="no warnings on stderr")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m client_encoder", description="Offline face encoder (ONNX Runtime), in clear.", epilog=HELP
    )
    _options(parser, suppress=False)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    embed = sub.add_parser("embed", help="print embeddings of photos as JSON", epilog=HELP)
    _options(embed, suppress=True)
    embed.add_argument("photos", nargs="+")
    compare = sub.add_parser("compare", help="clear distance and verdict for two photos", epilog=HELP)
    _options(compare, suppress=True)
    compare.add_argument("a")
    compare.add_argument("b")
    compare.add_argument("--json", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.ERROR if args.quiet else logging.WARNING, format="%(levelname)s: %(message)s")
    try:
        encoder = FaceEncoder(model_path=args.model, tta=args.tta, encoder=args.encoder)
        if args.command == "embed":
            return _embed(encoder, args.photos)
        return _compare(encoder, args.a, args.b, args.json)
    except PrivfaceError as err:
        print(f"error: {err}", file=sys.stderr)
        return FAILED
    except KeyboardInterrupt:
        # As `python -m privface` does: Ctrl-C is no crash, and ends with the status shells expect.
        print("\ninterrupted", file=sys.stderr)
        return INTERRUPTED
