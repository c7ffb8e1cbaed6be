import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from client_encoder.images import InvalidImageError, load_image
from tests.conftest import ASTRONAUT


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height but carries almost no data (a decompression bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    body = chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 100)) + chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + body


def test_path_bytes_pil_and_array_give_the_same_pixels():
    from_path = load_image(ASTRONAUT)
    assert from_path.shape == (512, 512, 3) and from_path.dtype == np.uint8
    np.testing.assert_array_equal(load_image(ASTRONAUT.read_bytes()), from_path)
    np.testing.assert_array_equal(load_image(Image.open(ASTRONAUT)), from_path)
    np.testing.assert_array_equal(load_image(from_path), from_path)


def test_not_an_image():
    with pytest.raises(InvalidImageError, match="not an image"):
        load_image(b"this is a text file, not a photo")


def test_truncated_jpeg():
    data = ASTRONAUT.read_bytes()
    with pytest.raises(InvalidImageError, match="truncated"):
        load_image(data[: len(data) // 3])


def test_zero_size_file(tmp_path):
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    with pytest.raises(InvalidImageError, match="empty"):
        load_image(empty)


def test_huge_image_is_refused_before_decoding():
    with pytest.raises(InvalidImageError, match="too large"):
        load_image(_png_header_only(20000, 20000))
    with pytest.raises(InvalidImageError, match="too large: 9000x9000"):
        load_image(_png_header_only(9000, 9000))


def test_missing_file_and_unknown_type():
    with pytest.raises(InvalidImageError, match="no such file"):
        load_image("/no/such/photo.jpg")
    with pytest.raises(TypeError):
        load_image(12345)


def test_exif_orientation_is_applied():
    upright = Image.open(ASTRONAUT).crop((0, 0, 512, 300))  # 512 wide, 300 high
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display": the camera stored it sideways
    buffer = io.BytesIO()
    upright.save(buffer, format="JPEG", exif=exif.tobytes())
    assert load_image(buffer.getvalue()).shape == (512, 300, 3)


def test_rgba_greyscale_and_float_arrays():
    rgba = Image.new("RGBA", (40, 30), (10, 20, 30, 0))  # fully transparent -> white
    assert load_image(rgba)[0, 0].tolist() == [255, 255, 255]
    grey = np.full((30, 40), 77, np.uint8)
    assert load_image(grey).shape == (30, 40, 3) and load_image(grey)[0, 0].tolist() == [77, 77, 77]
    unit_float = np.full((30, 40, 3), 0.5, np.float32)
    assert load_image(unit_float)[0, 0].tolist() == [127, 127, 127]
    with pytest.raises(InvalidImageError):
        load_image(np.zeros((30, 40, 7), np.uint8))
    with pytest.raises(InvalidImageError, match="no pixels"):
        load_image(np.zeros((0, 40, 3), np.uint8))
