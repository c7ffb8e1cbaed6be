"""Turn whatever the caller has (path, bytes, PIL image, numpy array) into an RGB uint8 array.

Bad input fails fast with `InvalidImageError`: not an image, truncated, empty, or too large
(the pixel count is read from the header before anything is decoded, so a 20000x20000 file
costs nothing). EXIF orientation is applied, as phones store portraits rotated.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from privface.errors import InvalidImageError

ImageInput = str | Path | bytes | bytearray | memoryview | Image.Image | np.ndarray

MAX_PIXELS = 40_000_000  # ~ a 7300x5500 photo; far above any phone camera's output
MAX_FILE_BYTES = 50 * 1024 * 1024


def _check_size(width: int, height: int, max_pixels: int) -> None:
    if width <= 0 or height <= 0:
        raise InvalidImageError(f"image has no pixels ({width}x{height})")
    if width * height > max_pixels:
        raise InvalidImageError(
            f"image is too large: {width}x{height} = {width * height / 1e6:.0f} MP (limit {max_pixels / 1e6:.0f} MP)"
        )


def _open_pil(data: bytes, max_pixels: int) -> Image.Image:
    if not data:
        raise InvalidImageError("empty file: zero bytes")
    if len(data) > MAX_FILE_BYTES:
        raise InvalidImageError(f"file is too large: {len(data) / 1e6:.0f} MB (limit {MAX_FILE_BYTES / 1e6:.0f} MB)")
    try:
        with warnings.catch_warnings():
            # PIL's own decompression-bomb check would warn or raise with a less useful message.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            _check_size(*image.size, max_pixels)
            image.load()  # decode now, so a truncated file fails here and not later
    except InvalidImageError:
        raise
    except Image.DecompressionBombError as err:
        raise InvalidImageError(f"image is too large: {err}") from err
    except UnidentifiedImageError as err:
        raise InvalidImageError("not an image (or an unsupported format)") from err
    except (OSError, SyntaxError, ValueError) as err:
        raise InvalidImageError(f"corrupted or truncated image: {err}") from err
    return image


def _to_rgb_array(image: Image.Image) -> np.ndarray:
    image = ImageOps.exif_transpose(image) or image
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        # Transparent pixels become white rather than whatever colour they hide.
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    return np.asarray(image.convert("RGB"), dtype=np.uint8).copy()


def _array_to_rgb(array: np.ndarray, max_pixels: int) -> np.ndarray:
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    if array.ndim != 3 or array.shape[2] not in (1, 3, 4):
        raise InvalidImageError(f"expected an HxW, HxWx1, HxWx3 or HxWx4 array, got shape {array.shape}")
    _check_size(array.shape[1], array.shape[0], max_pixels)
    if array.shape[2] == 1:
        array = np.repeat(array, 3, axis=2)
    if array.shape[2] == 4:
        alpha = array[:, :, 3:4].astype(np.float32) / (255.0 if array.dtype == np.uint8 else 1.0)
        array = array[:, :, :3] * alpha + (255 if array.dtype == np.uint8 else 1.0) * (1 - alpha)
    if array.dtype != np.uint8:
        if np.issubdtype(array.dtype, np.floating) and np.nanmax(array) <= 1.0:
            array = array * 255.0  # float images in [0, 1]
        array = np.clip(np.nan_to_num(array), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(array)


def load_image(source: ImageInput, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Return an RGB uint8 array (H, W, 3) from a path, encoded bytes, a PIL image or an array.

    Numpy arrays are taken as RGB(A) or greyscale, as PIL would give them.
    """
    if isinstance(source, np.ndarray):
        return _array_to_rgb(source, max_pixels)
    if isinstance(source, Image.Image):
        _check_size(*source.size, max_pixels)
        return _to_rgb_array(source)
    if isinstance(source, (bytes, bytearray, memoryview)):
        return _to_rgb_array(_open_pil(bytes(source), max_pixels))
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise InvalidImageError(f"{path}: no such file")
        if path.stat().st_size > MAX_FILE_BYTES:
            raise InvalidImageError(f"{path}: file is too large ({path.stat().st_size / 1e6:.0f} MB)")
        try:
            return _to_rgb_array(_open_pil(path.read_bytes(), max_pixels))
        except InvalidImageError as err:
            raise InvalidImageError(f"{path}: {err}") from err
    raise TypeError(f"cannot read an image from {type(source).__name__}")
