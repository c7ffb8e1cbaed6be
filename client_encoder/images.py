"""Turn whatever the caller has (path, bytes, PIL image, numpy array) into an RGB uint8 array.

One size policy for every entry point (app, both CLIs, library), checked from the header before
anything is decoded:
- a side under MIN_SIDE px is refused: no face fits, and dlib's CNN detector fails on such images
  (a C++ error that can corrupt the heap), so no detector may ever see them;
- over MAX_PIXELS (or MAX_FILE_BYTES) is refused outright;
- over WORK_PIXELS is downscaled to WORK_PIXELS (a JPEG is decoded at reduced scale directly, so a
  108 MP phone photo costs little memory).
Only the formats in FORMATS are read, sniffed from the content, not the file name; the app's
uploader offers the same list. EXIF orientation is applied, as phones store portraits rotated.
"""

from __future__ import annotations

import io
import math
import stat
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from privface_core.errors import InvalidImageError

ImageInput = str | Path | bytes | bytearray | memoryview | Image.Image | np.ndarray

MIN_SIDE = 32  # px: no face the detectors find fits in less (HOG scans 80 px windows, 40 px after upsampling)
WORK_PIXELS = 24_000_000  # 6000x4000: a 12 MP phone photo is used as it is, larger ones are downscaled
MAX_PIXELS = 150_000_000  # above 108 MP phone cameras, under PIL's own bomb limit; refused before decoding
MB = 1024 * 1024  # as Streamlit counts maxUploadSize
MAX_FILE_BYTES = 50 * MB
# PIL format name -> file extensions (the app's uploader and the docs list these).
FORMATS = {
    "JPEG": ("jpg", "jpeg"),
    "MPO": (),  # what PIL calls the JPEGs of cameras that embed a second picture
    "PNG": ("png",),
    "WEBP": ("webp",),
    "BMP": ("bmp",),
    "TIFF": ("tif", "tiff"),
    "PPM": ("ppm", "pgm", "pbm", "pnm"),
}
EXTENSIONS = tuple(ext for exts in FORMATS.values() for ext in exts)
FORMATS_TEXT = "JPEG, PNG, WebP, BMP, TIFF or PPM/PGM"
# HEIC/HEIF (phones' default photo format): an ISO media file whose first box, ftyp, names one of these brands.
# Pillow cannot read it; it is named, so the user knows what to do, rather than "not an image".
HEIF_BRANDS = (b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs", b"mif1", b"msf1")


def _check_size(width: int, height: int, max_pixels: int) -> None:
    if width <= 0 or height <= 0:
        raise InvalidImageError(f"image has no pixels ({width}x{height})")
    if min(width, height) < MIN_SIDE:
        raise InvalidImageError(
            f"image is too small: {width}x{height} px (each side must be at least {MIN_SIDE} px to hold a face)"
        )
    if width * height > max_pixels:
        raise InvalidImageError(
            f"image is too large: {width}x{height} = {width * height / 1e6:.0f} MP (limit {max_pixels / 1e6:.0f} MP)"
        )


def work_size(width: int, height: int) -> tuple[int, int]:
    """The size an image of width x height is used at: itself, or scaled down to WORK_PIXELS."""
    if width * height <= WORK_PIXELS:
        return width, height
    scale = math.sqrt(WORK_PIXELS / (width * height))
    return max(MIN_SIDE, int(width * scale)), max(MIN_SIDE, int(height * scale))


def _open_pil(data: bytes, max_pixels: int) -> Image.Image:
    if not data:
        raise InvalidImageError("empty file: zero bytes")
    if len(data) > MAX_FILE_BYTES:
        raise InvalidImageError(f"file is too large: {len(data) / MB:.0f} MB (limit {MAX_FILE_BYTES / MB:.0f} MB)")
    try:
        with warnings.catch_warnings():
            # PIL's own decompression-bomb check would warn or raise with a less useful message.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            if image.format not in FORMATS:
                raise InvalidImageError(f"unsupported format {image.format}: use {FORMATS_TEXT}")
            _check_size(*image.size, max_pixels)
            if image.format in ("JPEG", "MPO"):
                image.draft("RGB", work_size(*image.size))  # decode at 1/2, 1/4 or 1/8 scale when that suffices
            image.load()  # decode now, so a truncated file fails here and not later
    except InvalidImageError:
        raise
    except Image.DecompressionBombError as err:
        raise InvalidImageError(f"image is too large (limit {max_pixels / 1e6:.0f} MP)") from err
    except UnidentifiedImageError as err:
        if data[4:8] == b"ftyp" and data[8:12] in HEIF_BRANDS:
            raise InvalidImageError(
                "a HEIC/HEIF photo (a phone's format), which is not supported: convert it to JPEG or PNG (an "
                "iPhone saves JPEG with Settings > Camera > Formats > Most Compatible)"
            ) from err
        raise InvalidImageError(f"not an image, or an unsupported format (use {FORMATS_TEXT})") from err
    except (OSError, SyntaxError, ValueError) as err:
        raise InvalidImageError(f"corrupted or truncated image: {err}") from err
    return image


def _downscale(image: Image.Image) -> Image.Image:
    size = work_size(*image.size)
    if size == image.size:
        return image
    return image.resize(size, Image.Resampling.LANCZOS, reducing_gap=2.0)


def _to_uint8(array: np.ndarray) -> np.ndarray:
    """Pixel values as uint8: floats all within [0, 1] are scaled to 0-255, anything else is clipped to 0-255."""
    if array.dtype == np.uint8:
        return array
    if np.issubdtype(array.dtype, np.floating) and np.nanmax(array) <= 1.0:
        array = array * 255.0
    return np.clip(np.nan_to_num(array), 0, 255).astype(np.uint8)


def _deep_grey_to_uint8(image: Image.Image) -> np.ndarray:
    """Greyscale of more than 8 bits (PIL modes I;16*, I, F) as uint8: PIL's own conversion clips
    16-bit values to white and 0-1 floats to black, so such a photo had "no face"."""
    array = np.asarray(image)
    if image.mode == "F":
        return _to_uint8(array)
    if array.max(initial=0) > 0xFFFF:
        # Signed or unsigned, 24 or 32 significant bits: the range cannot be told, so no guess.
        raise InvalidImageError("unsupported pixel format: 32-bit integer greyscale (save it with 8 or 16 bits)")
    if image.mode.startswith("I;16") or array.max(initial=0) > 255:
        array = array >> 8  # 16-bit (scans, medical, some cameras): keep the top 8 bits
    return _to_uint8(array)


def _to_rgb_array(image: Image.Image) -> np.ndarray:
    image = ImageOps.exif_transpose(image) or image
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        # Transparent pixels become white rather than whatever colour they hide.
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    if image.mode in ("I", "F") or image.mode.startswith("I;16"):
        image = Image.fromarray(_deep_grey_to_uint8(image))
    if image.mode not in ("RGB", "L"):
        image = image.convert("RGB")  # CMYK, palette, bilevel: resize needs a plain mode
    return np.asarray(_downscale(image).convert("RGB"), dtype=np.uint8).copy()


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
    array = _to_uint8(array)
    if array.shape[0] * array.shape[1] > WORK_PIXELS:
        return np.asarray(_downscale(Image.fromarray(np.ascontiguousarray(array))), dtype=np.uint8).copy()
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
        path = _photo_file(source)
        try:
            return _to_rgb_array(_open_pil(_read(path), max_pixels))
        except InvalidImageError as err:
            raise InvalidImageError(f"{path}: {err}") from err
    raise TypeError(f"cannot read an image from {type(source).__name__}")


def _os_reason(err: OSError) -> str:
    """'permission denied', 'too many levels of symbolic links' (a loop), ...: the system's own words."""
    reason = err.strerror or str(err)
    return reason[:1].lower() + reason[1:]


def _photo_file(source: str | Path) -> Path:
    """The path, if it names a regular file of an acceptable size; else the one line that says why not.

    Checked with one stat before anything is opened: a FIFO or a device would block or never end.
    """
    if isinstance(source, str) and not source:
        raise InvalidImageError("empty path: name a photo file")  # Path("") would be "." (a folder)
    path = Path(source)
    try:
        info = path.stat()
    except FileNotFoundError as err:
        hint = " (standard input is not read: name a photo file)" if str(source) == "-" else ""
        raise InvalidImageError(f"{path}: no such file{hint}") from err
    except OSError as err:
        raise InvalidImageError(f"{path}: {_os_reason(err)}") from err
    except ValueError as err:  # a NUL byte in the path
        raise InvalidImageError(f"{str(source)!r}: not a valid path (it holds a NUL byte)") from err
    if stat.S_ISDIR(info.st_mode):
        raise InvalidImageError(f"{path}: is a folder, not an image file")
    if not stat.S_ISREG(info.st_mode):
        kind = "a pipe" if stat.S_ISFIFO(info.st_mode) else "a socket" if stat.S_ISSOCK(info.st_mode) else "a device"
        raise InvalidImageError(f"{path}: not a regular file ({kind}), not an image file")
    if info.st_size > MAX_FILE_BYTES:
        size = info.st_size / MB
        raise InvalidImageError(f"{path}: file is too large: {size:.0f} MB (limit {MAX_FILE_BYTES / MB:.0f} MB)")
    return path


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as err:  # unreadable (permissions), or gone since it was checked
        raise InvalidImageError(_os_reason(err)) from err
