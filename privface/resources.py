"""Where the shipped files are: the `artifacts/` tree (ONNX encoder, compiled heads) and example photos.

A source checkout (or an editable install) reads `artifacts/` beside the packages; an installed wheel
reads the copy it installed under `<prefix>/share/privface/artifacts` (pyproject's data-files);
`PRIVFACE_ARTIFACTS` overrides both. Example photos ship inside this package.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

__all__ = ["DEFAULT_KEY_DIR", "EXAMPLES_DIR", "artifacts_dir"]

EXAMPLES_DIR = Path(__file__).resolve().parent / "examples"
DEFAULT_KEY_DIR = Path("~/.privface/keys")
_CHECKOUT = Path(__file__).resolve().parents[1] / "artifacts"
_INSTALLED = Path(sys.prefix) / "share" / "privface" / "artifacts"


def artifacts_dir() -> Path:
    """The artifacts root: $PRIVFACE_ARTIFACTS, else the checkout's, else the installed copy."""
    override = os.environ.get("PRIVFACE_ARTIFACTS")
    if override:
        return Path(override).expanduser()
    for candidate in (_CHECKOUT, _INSTALLED):
        if candidate.is_dir():
            return candidate
    return _CHECKOUT
