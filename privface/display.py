"""How text that comes from elsewhere is shown to the user: URLs without their credentials, and a server's
words as one printable line; and whether a server URL has the form the client needs."""

from __future__ import annotations

from urllib.parse import urlsplit

__all__ = ["one_line", "public_url", "server_url_problem"]


def public_url(url: str) -> str:
    """`url` without user name and password: the form printed in messages and prompts."""
    scheme, sep, rest = url.partition("://")
    netloc, slash, path = rest.partition("/")
    return f"{scheme}{sep}{netloc.rpartition('@')[2]}{slash}{path}" if sep else url


def one_line(text: str, limit: int = 300) -> str:
    """Text from the server as one printable line: whitespace runs become a space, control and escape
    characters are shown escaped (a server must not be able to clear a terminal or fake a line)."""
    flat = " ".join(str(text).split())
    shown = "".join(c if c.isprintable() else repr(c)[1:-1] for c in flat)
    return shown if len(shown) <= limit else shown[: limit - 1] + "…"


def server_url_problem(url: str) -> str | None:
    """What is wrong with `url` as the server's address (http[s]://HOST[:PORT], optionally a proxy's path
    prefix), or None. Checked before any photo is read, so a mistyped URL costs nothing."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises ValueError on a port that is not a number)
    except ValueError as err:
        return str(err)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "expected http://HOST[:PORT] or https://HOST[:PORT]"
    if parts.query or parts.fragment:
        return "a server address has no ?query or #fragment"
    if "v1" in parts.path.split("/"):
        return "leave out /v1: the client adds the API paths itself"
    return None
