"""How text that comes from elsewhere is shown to the user: URLs without their credentials, and a server's
words as one printable line."""

from __future__ import annotations

__all__ = ["one_line", "public_url"]


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
