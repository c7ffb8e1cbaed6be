"""Where the shipped files are (the `artifacts/` tree: ONNX encoder, compiled heads) and the user's key folder.

A source checkout (or an editable install) reads `artifacts/` beside the packages; an installed wheel
reads the copy it installed under `<prefix>/share/privface/artifacts` (pyproject's data-files);
`PRIVFACE_ARTIFACTS` overrides both. Example photos ship inside the `privface` package
(`privface.resources.EXAMPLES_DIR`).
"""

from __future__ import annotations

import sys
from pathlib import Path

from privface_core.settings import settings

__all__ = ["DEFAULT_KEY_DIR", "artifacts_dir", "metrics_dir"]

DEFAULT_KEY_DIR = Path("~/.privface/keys")
_CHECKOUT = Path(__file__).resolve().parents[1] / "artifacts"
_INSTALLED = Path(sys.prefix) / "share" / "privface" / "artifacts"


def artifacts_dir() -> Path:
    """The artifacts root: $PRIVFACE_ARTIFACTS, else the checkout's, else the installed copy."""
    override = settings().artifacts
    if override is not None:
        return override
    for candidate in (_CHECKOUT, _INSTALLED):
        if candidate.is_dir():
            return candidate
    return _CHECKOUT


def metrics_dir() -> Path:
    """Where the measured figures are (JSON): written by training and the benchmarks, read by the app and
    by docs/results.md's generator."""
    return artifacts_dir() / "metrics"
