"""The example photos that ship inside this package. The shipped artifacts (ONNX encoder, compiled heads) are
found by `privface_core.resources.artifacts_dir`.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["EXAMPLES_DIR"]

EXAMPLES_DIR = Path(__file__).resolve().parent / "examples"
