"""Face chips the way dlib's ResNet expects them: `get_face_chip(size=150, padding=0.25)`
from 5 landmarks, with dlib's own geometry and sampling (small geometric differences move
descriptors far more than they seem to).

Test-time augmentation views are produced here too: the mirror image of the chip, and
small deterministic jitters (shift, zoom, rotation) of the crop taken from the source photo
rather than re-sampled from the chip.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import dlib
import numpy as np

from client_encoder.detect import Face

CHIP_SIZE = 150
CHIP_PADDING = 0.25


@dataclass(frozen=True)
class Jitter:
    """A small change of the crop, in chip pixels and degrees; `flip` mirrors the chip."""

    dx: float = 0.0
    dy: float = 0.0
    zoom: float = 1.0  # > 1 takes a wider crop
    degrees: float = 0.0
    flip: bool = False


IDENTITY = Jitter()
# Symmetric, so their mean stays centred; magnitudes follow dlib's jitter_image (+-2% shift,
# up to 3% zoom, +-3 degrees). Each comes with its mirror image.
_JITTERS = [
    Jitter(dx=3.0),
    Jitter(dx=-3.0),
    Jitter(dy=3.0),
    Jitter(dy=-3.0),
    Jitter(zoom=1.03),
    Jitter(zoom=0.97),
    Jitter(degrees=3.0),
    Jitter(degrees=-3.0),
]
TTA_VIEWS: dict[str, list[Jitter]] = {
    "none": [IDENTITY],
    "flip": [IDENTITY, Jitter(flip=True)],
    "jitter": [IDENTITY, Jitter(flip=True)]
    + [v for j in _JITTERS for v in (j, Jitter(j.dx, j.dy, j.zoom, j.degrees, flip=True))],
}

# Ranges of dlib's jitter_image (its 100-jitter descriptors are the reference for more views).
_MAX_SHIFT_PX, _MAX_ZOOM, _MAX_DEGREES = 3.0, 0.03, 3.0


def views_of(mode: str) -> list[Jitter]:
    """The views of a TTA mode: a TTA_VIEWS name, or "jitter<N>" (N = 18 + 4k, a measurement set): the 18
    "jitter" views, then seeded random jitters in dlib's ranges as antithetic pairs (j, -j), each with its
    mirror. Nested: the first 18 / 50 views of "jitter98" are "jitter" / "jitter50"."""
    if mode in TTA_VIEWS:
        return list(TTA_VIEWS[mode])
    base = TTA_VIEWS["jitter"]
    n = int(mode.removeprefix("jitter")) if mode.startswith("jitter") and mode[6:].isdigit() else -1
    if n < len(base) or (n - len(base)) % 4:
        raise ValueError(f"unknown TTA mode {mode!r}: one of {sorted(TTA_VIEWS)} or jitter<N>, N = 18 + 4k")
    views = list(base)
    rng = np.random.default_rng(0)
    while len(views) < n:
        dx, dy = rng.uniform(-_MAX_SHIFT_PX, _MAX_SHIFT_PX, 2)
        zoom, degrees = rng.uniform(-_MAX_ZOOM, _MAX_ZOOM), rng.uniform(-_MAX_DEGREES, _MAX_DEGREES)
        for jitter in (Jitter(dx, dy, 1 + zoom, degrees), Jitter(-dx, -dy, 1 - zoom, -degrees)):
            views += [jitter, replace(jitter, flip=True)]
    return views


def _full_object_detection(face: Face) -> dlib.full_object_detection:
    left, top, right, bottom = face.box
    points = dlib.points([dlib.point(int(round(x)), int(round(y))) for x, y in face.landmarks])
    return dlib.full_object_detection(dlib.rectangle(left, top, right, bottom), points)


def chip_details(face: Face) -> dlib.chip_details:
    """dlib's chip geometry for this face (what get_face_chip would cut)."""
    return dlib.get_face_chip_details(_full_object_detection(face), CHIP_SIZE, CHIP_PADDING)


def _jittered(details: dlib.chip_details, jitter: Jitter) -> dlib.chip_details:
    rect = details.rect
    source_per_chip_px = rect.width() / CHIP_SIZE
    cos_a, sin_a = math.cos(details.angle), math.sin(details.angle)
    # A shift in chip pixels is a rotated shift in the source image.
    shift_x = (cos_a * jitter.dx - sin_a * jitter.dy) * source_per_chip_px
    shift_y = (sin_a * jitter.dx + cos_a * jitter.dy) * source_per_chip_px
    centre = rect.center()
    half_w, half_h = rect.width() * jitter.zoom / 2.0, rect.height() * jitter.zoom / 2.0
    cx, cy = centre.x + shift_x, centre.y + shift_y
    new_rect = dlib.drectangle(cx - half_w, cy - half_h, cx + half_w, cy + half_h)
    return dlib.chip_details(
        new_rect, dlib.chip_dims(CHIP_SIZE, CHIP_SIZE), details.angle + math.radians(jitter.degrees)
    )


def align(image: np.ndarray, face: Face, views: list[Jitter] | None = None) -> np.ndarray:
    """Face chips (n_views, 150, 150, 3) uint8 RGB; by default the single aligned chip."""
    views = views or [IDENTITY]
    details = chip_details(face)
    chips = []
    for jitter in views:
        if jitter.dx or jitter.dy or jitter.zoom != 1.0 or jitter.degrees:
            chip = dlib.extract_image_chip(image, _jittered(details, jitter))
        else:
            chip = dlib.extract_image_chip(image, details)
        chip = np.asarray(chip)
        chips.append(chip[:, ::-1] if jitter.flip else chip)
    return np.ascontiguousarray(np.stack(chips))
