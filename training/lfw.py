"""Labeled Faces in the Wild in its standard layout, from any path.

A directory holding `pairs.txt` (View 2: 10 folds) and/or `pairsDevTrain.txt` /
`pairsDevTest.txt` (View 1), and images as `<Name>/<Name>_NNNN.jpg` either directly in it
(as `lfw.tgz` unpacks) or in a sub-folder `images/`, `lfw/` or `lfw-deepfunneled/`.
The location comes from a flag or the `LFW_DIR` environment variable; nothing is hard-coded.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

ENV_VAR = "LFW_DIR"
_IMAGE_SUBDIRS = ("images", "lfw", "lfw-deepfunneled", "lfw_funneled", ".")  # "." = lfw.tgz unpacked in place


class LFWNotFound(FileNotFoundError):
    """No LFW copy at the given location."""


@dataclass(frozen=True)
class Pair:
    left: Path
    right: Path
    same: bool
    fold: int  # 0..9 for View 2; 0 for View 1 files


def resolve_lfw_dir(path: str | Path | None = None) -> Path:
    """The LFW root from an explicit path, else $LFW_DIR; a clear error if neither holds LFW."""
    chosen = path or os.environ.get(ENV_VAR)
    if not chosen:
        raise LFWNotFound(
            f"no LFW directory given: pass --lfw-dir or set {ENV_VAR} "
            "(a folder with pairs.txt and <Name>/<Name>_NNNN.jpg images; see README 'Getting LFW')"
        )
    root = Path(chosen).expanduser()
    if not (root / "pairs.txt").is_file() and not (root / "pairsDevTest.txt").is_file():
        raise LFWNotFound(f"{root} holds no pairs.txt / pairsDevTest.txt: not an LFW directory")
    return root


def images_dir(root: Path) -> Path:
    """The folder whose sub-folders are the people."""
    for sub in _IMAGE_SUBDIRS:
        candidate = (root / sub).resolve()
        if candidate.is_dir() and any(p.is_dir() and not p.name.startswith(".") for p in candidate.iterdir()):
            return candidate
    raise LFWNotFound(f"{root}: no image folders (<Name>/<Name>_NNNN.jpg) found")


def image_path(images: Path, name: str, number: int) -> Path:
    return images / name / f"{name}_{number:04d}.jpg"


def _parse_pair(fields: list[str], images: Path, fold: int, lineno: int, source: Path) -> Pair:
    try:
        if len(fields) == 3:
            name, i, j = fields
            return Pair(image_path(images, name, int(i)), image_path(images, name, int(j)), True, fold)
        if len(fields) == 4:
            name_a, i, name_b, j = fields
            return Pair(image_path(images, name_a, int(i)), image_path(images, name_b, int(j)), False, fold)
    except ValueError:
        pass
    raise ValueError(f"{source}:{lineno}: not an LFW pair line: {' '.join(fields)!r}")


def read_pairs(path: Path, images: Path) -> list[Pair]:
    """Parse an official pairs file. View 2's header is "10<TAB>300" (folds, pairs per class per
    fold: 300 matched then 300 mismatched, fold after fold); View 1's is a single count."""
    lines = [line.split() for line in path.read_text().splitlines() if line.strip()]
    if not lines:
        raise ValueError(f"{path}: empty pairs file")
    header = [int(v) for v in lines[0]]
    n_folds, per_class = (header[0], header[1]) if len(header) == 2 else (1, header[0])
    body = lines[1:]
    if len(body) != n_folds * 2 * per_class:
        raise ValueError(f"{path}: header promises {n_folds}x2x{per_class} pairs, file has {len(body)}")
    pairs = []
    for index, fields in enumerate(body):
        fold = index // (2 * per_class)
        pair = _parse_pair(fields, images, fold, index + 2, path)
        expected_same = (index % (2 * per_class)) < per_class
        if pair.same != expected_same:
            raise ValueError(f"{path}:{index + 2}: a {'matched' if expected_same else 'mismatched'} pair was expected")
        pairs.append(pair)
    return pairs


class LFW:
    """One LFW copy: its pair lists, resolved to image paths."""

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = resolve_lfw_dir(root)
        self.images = images_dir(self.root)

    def view2(self) -> list[Pair]:
        """The 6,000 pairs of the 10-fold protocol (fold = index of the test split)."""
        return read_pairs(self.root / "pairs.txt", self.images)

    def view1(self) -> tuple[list[Pair], list[Pair]]:
        """(pairsDevTrain, pairsDevTest): for choosing hyper-parameters, never View 2 test folds."""
        return (
            read_pairs(self.root / "pairsDevTrain.txt", self.images),
            read_pairs(self.root / "pairsDevTest.txt", self.images),
        )

    def variant(self) -> str:
        """'deep-funneled', 'funneled' or 'original', from the folder's README or name."""
        text = self.root.name.lower()
        readme = self.root / "README.md"
        if readme.is_file():
            text += " " + readme.read_text(errors="ignore")[:300].lower()
        if "deep-funneled" in text or "deepfunneled" in text:
            return "deep-funneled"
        if "funneled" in text and "original" not in text:
            return "funneled"
        return "original"


def open_lfw_for_cli(path: str | Path | None) -> LFW:
    """LFW for a command-line tool: on a missing copy, say why on stderr and exit with status 2."""
    try:
        return LFW(path)
    except LFWNotFound as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None


def unique_images(pairs: list[Pair]) -> list[Path]:
    seen: dict[Path, None] = {}
    for pair in pairs:
        seen.setdefault(pair.left)
        seen.setdefault(pair.right)
    return list(seen)
