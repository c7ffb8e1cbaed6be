"""Command line client of the verification server (the secret key never leaves this machine).

    python -m privface compare A.jpg B.jpg
    python -m privface enrol PHOTO --name NAME [--replace]
    python -m privface verify PHOTO --name NAME
    python -m privface identify PHOTO
    python -m privface list [--json]
    python -m privface delete NAME
    python -m privface forget [--yes]

Server: --url or $PRIVFACE_URL (default http://127.0.0.1:8000). Keys: --key-dir (default
~/.privface/keys). Options go before or after the command. Photos are read and their faces found
before any key is generated or uploaded. Quiet by default; --verbose prints keys and timings.

Exit status: 0 same person / match / done; 1 failed (a photo that cannot be used, no face, the server
unreachable or refusing, key or artifact errors); 2 usage error; 3 different people / no match;
130 interrupted (Ctrl-C).

Only what a command needs is loaded: --help and usage errors load neither the face encoder nor the FHE
runtime; list and delete never load the encoder, nor the runtime once the key id is cached beside the keys
(<circuit>.keyid, written whenever the keys are made or loaded).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import datetime

from fhe_head.artifacts import DEFAULT_POINT, POINTS
from fhe_head.head import DEFAULT_LEVEL, LEVEL_NAMES
from privface.display import one_line, public_url, server_url_problem
from privface.levels import describe
from privface_core.errors import NoFaceError, PrivfaceError, TemplateExistsError, UnknownTemplateError
from privface_core.exitcodes import FAILED, HELP, INTERRUPTED, NEGATIVE, OK, USAGE
from privface_core.resources import DEFAULT_KEY_DIR
from privface_core.settings import settings

PHOTO_ARGS = {"compare": ("a", "b"), "enrol": ("photos",), "verify": ("photo",), "identify": ("photo",)}
KEY_ONLY = ("list", "delete", "forget")  # commands that never need new keys
JSON_HELP = (
    "print the result as JSON; timings in seconds, total_s the whole command from its start (photos read and "
    "encoded, FHE runtime and keys loaded, keys made and uploaded on a first run, the server, decryption; "
    "only Python's start and the CLI's first imports come before it)"
)
_encoders: dict[str, object] = {}


def _encoder(args: argparse.Namespace):
    """One FaceEncoder per run, the one the head was trained on (the photos are checked with the same one
    the client uses)."""
    if args.tta not in _encoders:
        from client_encoder.encoder import FaceEncoder
        from fhe_head.artifacts import head_encoder

        _encoders[args.tta] = FaceEncoder(tta=args.tta, encoder=head_encoder(args.point))
    return _encoders[args.tta]


def _client(args: argparse.Namespace, point: str | None = None):
    """The client for `point` (default --point); the face encoder only for a command that reads photos."""
    from privface.client import VerificationClient

    encoder = _encoder(args) if args.command in PHOTO_ARGS else None
    return VerificationClient(args.url, point or args.point, args.key_dir, encoder=encoder, level=args.security)


def _say(args: argparse.Namespace, message: str) -> None:
    if args.verbose:
        print(message, file=sys.stderr)


def _encode_photos(args: argparse.Namespace) -> list:
    """Every photo of the command, read and embedded before any key work; errors name the file."""
    encodings = []
    paths = [getattr(args, attribute) for attribute in PHOTO_ARGS.get(args.command, ())]
    for path in [p for group in paths for p in (group if isinstance(group, list) else [group])]:
        start = time.perf_counter()
        try:
            encodings.append(_encoder(args).encode(path))
        except NoFaceError as err:
            raise NoFaceError(f"{path}: {err}") from err
        if encodings[-1].note:  # several faces: which one was used is said, always
            print(f"note: {path}: {encodings[-1].note}", file=sys.stderr)
        _say(args, f"{path}: face found and embedded in {time.perf_counter() - start:.2f} s")
    return encodings


def _connect(args: argparse.Namespace, client) -> None:
    bar = None

    def progress(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            from tqdm import tqdm

            # the only output of a first run that takes long: shown on a terminal, never in a pipe
            visible = args.verbose or sys.stderr.isatty()
            bar = tqdm(total=total, unit="B", unit_scale=True, desc="uploading evaluation keys", disable=not visible)
        bar.update(done - bar.n)

    client.connect(progress)
    if bar is not None:
        bar.close()
    timings = ", ".join(f"{k} {v:.2f} s" for k, v in client.timings.items())
    _say(args, f"key id {client.key_id} ({timings})")


def _no_keys(args: argparse.Namespace, client) -> int:
    """list / delete / forget when we have no keys for this head, or the server holds none of ours: say
    which, upload nothing."""
    key_file = client.key_file
    if key_file is None or not key_file.is_file():
        where = f"no keys for the {args.point} head in {args.key_dir}"
    else:
        where = f"the server at {public_url(args.url)} holds no keys of yours for the {args.point} head"
    if args.command == "delete":
        print(f"error: no template {args.name!r}: {where}", file=sys.stderr)
        return FAILED
    if args.command == "list" and args.json:
        print("[]")
    else:
        print(where + (": nothing to delete" if args.command == "forget" else ""))
    return OK


def _print_result(args: argparse.Namespace, result) -> int:
    result.timings["total_s"] = time.perf_counter() - args.started  # the command's, not only the comparison's
    if args.json:
        print(json.dumps(result.to_dict(), indent=1))
    else:
        answer = "Same person" if result.same else "Different people"
        print(answer + (f" as {result.name!r}" if result.name and result.same else ""))
        timings = ", ".join(f"{k} {v:.3f} s" for k, v in result.timings.items())
        _say(args, f"security level {result.level}: {describe(result.point, result.level, result.template_photos)}")
        _say(args, f"decrypted here; {timings}")
    return OK if result.same else NEGATIVE


def _table(records: list[dict]) -> str:
    if not records:
        return "no templates enrolled under this key"
    rows = [("NAME", "CIPHERTEXT", "ENROLLED")]
    for record in records:
        when = datetime.fromtimestamp(record["created"]).strftime("%Y-%m-%d %H:%M")
        rows.append((one_line(record["name"]), f"{record['size'] / 1e3:.1f} KB", when))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    return "\n".join(f"{r[0]:<{widths[0]}}  {r[1]:>{widths[1]}}  {r[2]}" for r in rows)


def _confirm(args: argparse.Namespace) -> bool | None:
    """True to go on; False if the user said no; None if there is no terminal to ask (needs --yes)."""
    if args.yes:
        return True
    if not sys.stdin.isatty():
        return None
    question = f"Delete your keys (every head) and every template enrolled with them from {public_url(args.url)}?"
    try:
        answer = input(question + " [y/N] ")
    except EOFError:  # Ctrl-D: no
        print()
        return False
    return answer.strip().lower() in ("y", "yes")


def _run_command(args: argparse.Namespace, client, encodings: list) -> int:
    if args.command == "compare":
        return _print_result(args, client.compare(encodings[0], encodings[1]))
    if args.command == "enrol":
        try:
            photos = encodings if len(encodings) > 1 else encodings[0]
            record = client.enrol(photos, args.name, replace=args.replace, labels=args.photos)
        except TemplateExistsError as err:
            raise TemplateExistsError(f"a template named {args.name!r} exists: add --replace to overwrite it") from err
        stored = f"{record['size'] / 1e3:.1f} KB of ciphertext stored on the server"
        source = f"from {record['photos']} photos, " if record["photos"] > 1 else ""
        print(f"enrolled {one_line(record['name'])!r} ({source}{stored})")
        return OK
    if args.command == "verify":
        return _print_result(args, _named(args, lambda: client.verify(encodings[0], args.name)))
    if args.command == "identify":
        matches = client.identify(encodings[0])
        found = [one_line(name) for name, same in matches if same]
        if args.json:
            print(json.dumps({"matches": found, "templates": len(matches)}, indent=1))
        elif not matches:
            print("no templates enrolled under this key")
        else:
            print("\n".join(f"MATCH  {name}" for name in found) or f"no match among {len(matches)} templates")
        # One probe meets every template: it asks for the level's several-photo threshold where there is one.
        several = client.level_against(None) != client.level
        which = " (its threshold for templates of several photos)" if several else ""
        sentence = describe(client.point, client.level, None if several else 1)
        _say(args, f"security level {client.level}{which}: {sentence}")
        _say(args, f"{len(matches)} templates, server wall {client.timings.get('identify_server_wall_s', 0):.2f} s")
        return OK if found else NEGATIVE
    if args.command == "list":
        records = client.templates()
        print(json.dumps(records, indent=1) if args.json else _table(records))
        return OK
    if args.command == "delete":
        _named(args, lambda: client.delete(args.name))
        print(f"deleted {args.name!r}")
        return OK
    raise AssertionError(f"unknown command {args.command}")


def _forget(args: argparse.Namespace) -> int:
    """Every head whose keys the key folder holds: its keys and templates deleted from the server, said per head."""
    held = 0
    for point in POINTS:
        with _client(args, point) as client:
            key_file = client.key_file
            if key_file is None or not key_file.is_file():
                continue
            held += 1
            if not client.connect_saved():
                print(f"{point} head: the server at {public_url(args.url)} holds no keys of yours: nothing to delete")
                continue
            count = len(client.templates())
            client.forget_me()
            print(f"{point} head: deleted your keys and {count} template{'s' * (count != 1)} from the server")
    if not held:
        print(f"no keys in {args.key_dir}: nothing to delete")
    return OK


def _named(args: argparse.Namespace, call):
    """`call()`, with the server's "no such template" (404) naming the template asked for, and the other head
    it is enrolled under, if it is."""
    try:
        return call()
    except UnknownTemplateError as err:
        message = f"no template named {args.name!r} is enrolled under your key"
        other = _head_holding(args, args.name)
        if other:
            message = (
                f"no template named {args.name!r} is enrolled under your {args.point} key; one is under your "
                f"{other} key: add --point {other}"
            )
        raise UnknownTemplateError(message) from err


def _head_holding(args: argparse.Namespace, name: str) -> str | None:
    """Another head under whose keys (saved in the key folder, held by the server) `name` is enrolled."""
    for point in POINTS:
        if point == args.point:
            continue
        with _client(args, point) as client:
            if client.connect_saved() and any(t["name"] == name for t in client.templates()):
                return point
    return None


def _check_key_dir(args: argparse.Namespace) -> str | None:
    """A usage error about --key-dir, or None."""
    if not args.key_dir.strip():
        return "--key-dir is empty (keys would be thrown away after this run)"
    path = os.path.expanduser(args.key_dir)
    if os.path.exists(path) and not os.path.isdir(path):
        return f"--key-dir {args.key_dir} is a file, not a folder"
    return None


def run(args: argparse.Namespace) -> int:
    problem = _check_key_dir(args)
    if server_url_problem(args.url):
        problem = f"--url {public_url(args.url)}: {server_url_problem(args.url)}"
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return USAGE
    try:
        if args.command == "forget":
            confirmed = _confirm(args)
            if confirmed is None:
                print("error: forget deletes your keys and templates: add --yes to confirm", file=sys.stderr)
                return USAGE
            if not confirmed:
                print("nothing deleted")
                return OK
            return _forget(args)
        encodings = _encode_photos(args)
        with _client(args) as client:
            if args.command in KEY_ONLY and not client.connect_saved():
                return _no_keys(args, client)
            _connect(args, client)
            return _run_command(args, client, encodings)
    except PrivfaceError as err:
        print(f"error: {err}", file=sys.stderr)
        return FAILED
    except OSError as err:
        print(f"error: {err.strerror or err}: {err.filename or ''}".rstrip(": "), file=sys.stderr)
        return FAILED
    except EOFError:
        print("\ninterrupted", file=sys.stderr)
        return FAILED


def _common(parser: argparse.ArgumentParser, suppress: bool) -> None:
    """The global options; on a subcommand they default to SUPPRESS, so they may come after it too."""

    def default(value):
        return argparse.SUPPRESS if suppress else value

    parser.add_argument(
        "--url",
        default=default(settings().url or "http://127.0.0.1:8000"),
        help="the verification server, http[s]://HOST[:PORT] (default: $PRIVFACE_URL, else http://127.0.0.1:8000)",
    )
    parser.add_argument("--point", default=default(DEFAULT_POINT), choices=POINTS, help="which encrypted head")
    parser.add_argument(
        "--key-dir", default=default(str(DEFAULT_KEY_DIR)), help="where the secret key is kept (mode 0600)"
    )
    parser.add_argument(
        "--tta",
        default=default("jitter"),
        choices=("none", "flip", "jitter"),
        help="the dlib encoder's test-time augmentation: the face once (none), also mirrored (flip), or "
        "with small shifts, zooms and turns too (jitter: 18 views, the steadiest and slowest) (default: jitter)",
    )
    parser.add_argument(
        "--security",
        default=default(None),
        choices=LEVEL_NAMES,
        help="false-match rate the probe asks for (sent encrypted; the server cannot tell): 1e-3 = about 1 "
        "stranger in 1,000 accepted over LFW's mix of people, several times more among strangers who look alike "
        f"(-v prints the measured rates); balanced = best LFW accuracy, less secure (default: {DEFAULT_LEVEL}, "
        "or the strictest level the head offers)",
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", default=default(False), help="print keys, steps and timings"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m privface", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    _common(parser, suppress=False)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_: str) -> argparse.ArgumentParser:
        subparser = sub.add_parser(name, help=help_, description=help_, epilog=HELP)
        _common(subparser, suppress=True)
        return subparser

    compare = command("compare", "compare two photos under encryption")
    compare.add_argument("a", help="first photo")
    compare.add_argument("b", help="second photo")
    compare.add_argument("--json", action="store_true", help=JSON_HELP)
    enrol = command("enrol", "store an encrypted template on the server")
    enrol.add_argument(
        "photos", nargs="+", metavar="PHOTO", help="1 to 10 photos of the person's face (one template from all)"
    )
    enrol.add_argument("--name", required=True, help="the name to store the template under")
    enrol.add_argument("--replace", action="store_true", help="overwrite a template of the same name")
    verify = command("verify", "check a photo against an enrolled template")
    verify.add_argument("photo", help="the photo to check")
    verify.add_argument("--name", required=True, help="the enrolled template to check it against")
    verify.add_argument("--json", action="store_true", help=JSON_HELP)
    identify = command("identify", "check a photo against every enrolled template")
    identify.add_argument("photo", help="the photo to check")
    identify.add_argument("--json", action="store_true", help="print the matches as JSON")
    listing = command("list", "list enrolled templates")
    listing.add_argument("--json", action="store_true", help="print the records as JSON (times in epoch seconds)")
    delete = command("delete", "delete an enrolled template")
    delete.add_argument("name", help="the template's name")
    forget = command("forget", "delete your keys and templates from the server (every head in the key folder)")
    forget.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")
    return parser


def main(argv: list[str] | None = None) -> int:
    started = time.perf_counter()
    try:
        args = build_parser().parse_args(argv)
        args.started = started  # total_s counts from here
        return run(args)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
