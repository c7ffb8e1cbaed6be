import io
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from client_encoder.images import (
    FORMATS,
    MAX_FILE_BYTES,
    MAX_PIXELS,
    MB,
    MIN_SIDE,
    WORK_PIXELS,
    InvalidImageError,
    load_image,
    work_size,
)
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


@pytest.mark.parametrize("brand", [b"heic", b"mif1", b"hevc"])
def test_a_heic_photo_is_named_with_what_to_do(brand):
    """A phone's HEIC/HEIF file (its ftyp box as an iPhone writes it) is named, not 'not an image'."""
    heic = b"\x00\x00\x00\x18ftyp" + brand + b"\x00\x00\x00\x00mif1heic" + b"\x00\x00\x01\x00meta" + bytes(1000)
    with pytest.raises(InvalidImageError) as refused:
        load_image(heic)
    assert str(refused.value).startswith("a HEIC/HEIF photo") and "convert it to JPEG or PNG" in str(refused.value)


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
    with pytest.raises(InvalidImageError, match="too large: 13000x12000 = 156 MP"):
        load_image(_png_header_only(13000, 12000))
    with pytest.raises(InvalidImageError, match="too large"):  # past PIL's own bomb check too
        load_image(_png_header_only(20000, 20000))


def _jpeg(image: Image.Image, **save) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", **save)
    return buffer.getvalue()


@pytest.mark.parametrize("size", [(1, 1), (2, 2), (1, 500), (500, 3), (31, 400), (400, 31)])
def test_tiny_image_is_refused_from_every_source(size, tmp_path):
    image = Image.new("RGB", size, (120, 90, 60))
    path = tmp_path / "tiny.png"
    image.save(path)
    for source in (path, path.read_bytes(), image, np.asarray(image)):
        with pytest.raises(InvalidImageError, match=f"too small: {size[0]}x{size[1]} px"):
            load_image(source)


def test_smallest_accepted_size():
    assert load_image(Image.new("RGB", (MIN_SIDE, MIN_SIDE))).shape == (MIN_SIDE, MIN_SIDE, 3)


def test_detector_itself_refuses_a_tiny_array():
    from client_encoder.detect import FaceDetector

    with pytest.raises(InvalidImageError, match="too small"):
        FaceDetector().detect(np.zeros((3, 500, 3), np.uint8))


def test_phone_sized_photo_is_used_as_it_is():
    photo = Image.open(ASTRONAUT).resize((4032, 3024))  # a 12 MP phone photo
    assert load_image(_jpeg(photo, quality=80)).shape == (3024, 4032, 3)


def test_108_megapixel_photo_is_downscaled_not_refused(encoder):
    photo = Image.open(ASTRONAUT).resize((12000, 9000), Image.Resampling.NEAREST)
    pixels = load_image(_jpeg(photo, quality=70))
    height, width = pixels.shape[:2]
    assert height * width <= WORK_PIXELS and abs(width / height - 12000 / 9000) < 0.01
    assert (width, height) == work_size(12000, 9000)
    # the face is still found where it is in the small original (scaled to the working size)
    small = encoder.encode(ASTRONAUT).face.box
    big = encoder.encode(pixels).face.box
    assert abs(big[0] * 512 / width - small[0]) < 10 and abs(big[1] * 512 / height - small[1]) < 10


def test_large_array_is_downscaled_too():
    pixels = load_image(np.zeros((5000, 6000, 3), np.uint8))
    assert pixels.shape[0] * pixels.shape[1] <= WORK_PIXELS and pixels.shape[2] == 3


@pytest.mark.parametrize(("kind", "message"), [("GIF", "unsupported format GIF"), ("ICO", "unsupported format ICO")])
def test_unsupported_format_is_named(kind, message):
    buffer = io.BytesIO()
    Image.open(ASTRONAUT).resize((64, 64)).save(buffer, format=kind)
    with pytest.raises(InvalidImageError, match=message):
        load_image(buffer.getvalue())


@pytest.mark.parametrize("kind", ["PNG", "WEBP", "BMP", "TIFF", "PPM"])
def test_each_supported_format_reads(kind):
    buffer = io.BytesIO()
    Image.open(ASTRONAUT).resize((64, 48)).save(buffer, format=kind)
    assert kind in FORMATS and load_image(buffer.getvalue()).shape == (48, 64, 3)


def test_folder_is_a_clear_error(tmp_path):
    with pytest.raises(InvalidImageError, match="is a folder"):
        load_image(tmp_path)


def test_tiny_photo_leaves_the_process_exiting_cleanly(tmp_path):
    """Refused before any detector: no dlib error, and no heap corruption at exit (it used to die with 134)."""
    tiny = tmp_path / "tiny.png"
    Image.new("RGB", (1, 500)).save(tiny)
    script = (
        "import sys\n"
        "from client_encoder import FaceEncoder, InvalidImageError\n"
        'encoder = FaceEncoder(encoder="dlib")\n'
        "for _ in range(3):\n"
        "    try:\n"
        "        encoder.encode(sys.argv[1])\n"
        "    except InvalidImageError as err:\n"
        "        print(err)\n"
        "print(len(encoder.encode(sys.argv[2]).faces))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(tiny), str(ASTRONAUT)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=Path(__file__).parents[1],
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.count("too small: 1x500 px") == 3 and result.stdout.strip().endswith("1")
    assert "dlib" not in result.stderr and "Error detected" not in result.stderr


def test_missing_file_and_unknown_type():
    with pytest.raises(InvalidImageError, match="no such file"):
        load_image("/no/such/photo.jpg")
    with pytest.raises(TypeError):
        load_image(12345)


def _bad_paths(folder: Path) -> dict[str, str]:
    """Paths that name no photo file -> the one line each must give (the first ones read 'no such file')."""
    fifo = folder / "pipe.jpg"
    os.mkfifo(fifo)
    loop = folder / "loop.jpg"
    loop.symlink_to(loop)
    return {
        "": "empty path: name a photo file",
        str(fifo): f"{fifo}: not a regular file (a pipe), not an image file",
        "/dev/zero": "/dev/zero: not a regular file (a device), not an image file",
        "-": "-: no such file (standard input is not read: name a photo file)",
        str(loop): f"{loop}: too many levels of symbolic links",
        str(folder / "none.jpg"): f"{folder / 'none.jpg'}: no such file",
        str(folder): f"{folder}: is a folder, not an image file",
    }


def test_each_kind_of_bad_path_is_named(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # where no file is named "-"
    for path, message in _bad_paths(tmp_path).items():
        with pytest.raises(InvalidImageError) as caught:
            load_image(path)
        assert str(caught.value) == message


def test_exif_orientation_is_applied():
    upright = Image.open(ASTRONAUT).crop((0, 0, 512, 300))  # 512 wide, 300 high
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display": the camera stored it sideways
    buffer = io.BytesIO()
    upright.save(buffer, format="JPEG", exif=exif.tobytes())
    assert load_image(buffer.getvalue()).shape == (512, 300, 3)


def test_rgba_greyscale_and_float_arrays():
    rgba = Image.new("RGBA", (40, 36), (10, 20, 30, 0))  # fully transparent -> white
    assert load_image(rgba)[0, 0].tolist() == [255, 255, 255]
    grey = np.full((36, 40), 77, np.uint8)
    assert load_image(grey).shape == (36, 40, 3) and load_image(grey)[0, 0].tolist() == [77, 77, 77]
    unit_float = np.full((36, 40, 3), 0.5, np.float32)
    assert load_image(unit_float)[0, 0].tolist() == [127, 127, 127]
    with pytest.raises(InvalidImageError):
        load_image(np.zeros((36, 40, 7), np.uint8))
    with pytest.raises(InvalidImageError, match="no pixels"):
        load_image(np.zeros((0, 40, 3), np.uint8))


def test_16_bit_greyscale_keeps_its_contrast():
    grey = (np.arange(64 * 64, dtype=np.uint32).reshape(64, 64) * 16).astype(np.uint16)  # 0..65520
    buffer = io.BytesIO()
    Image.fromarray(grey).save(buffer, format="PNG")
    pixels = load_image(buffer.getvalue())
    assert pixels[0, 0].tolist() == [0, 0, 0] and pixels[-1, -1, 0] == 255 and 100 < pixels.mean() < 155


@pytest.mark.parametrize("mode", ["CMYK", "1", "LA", "P", "F"])
def test_other_pixel_modes_read_as_rgb(mode):
    image = Image.open(ASTRONAUT).resize((64, 64)).convert(mode)
    pixels = load_image(image)
    assert pixels.shape == (64, 64, 3) and pixels.dtype == np.uint8 and 20 < pixels.mean() < 235


def _tiff(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="TIFF")
    return buffer.getvalue()


def test_float_and_32_bit_tiffs_keep_their_contrast(encoder):
    grey = np.asarray(Image.open(ASTRONAUT).convert("L"))
    unit_float = _tiff(grey.astype(np.float32) / 255)  # PIL mode F, 0-1: PIL's conversion made it black
    assert Image.open(io.BytesIO(unit_float)).mode == "F"
    assert np.abs(load_image(unit_float)[:, :, 0].astype(int) - grey).max() <= 1
    assert encoder.detect(unit_float), "the face in a 0-1 float TIFF"
    wide = _tiff(grey.astype(np.int32) * 257)  # PIL mode I, 16-bit values
    assert Image.open(io.BytesIO(wide)).mode == "I"
    np.testing.assert_array_equal(load_image(wide)[:, :, 0], grey)
    np.testing.assert_array_equal(load_image(_tiff(grey.astype(np.int32)))[:, :, 0], grey)  # mode I, 8-bit values
    with pytest.raises(InvalidImageError, match="unsupported pixel format: 32-bit integer"):
        load_image(_tiff(grey.astype(np.int32) << 23))


def test_docs_state_the_size_limits_the_code_has():
    docs = Path(__file__).parents[1] / "docs"
    encoder_doc = " ".join((docs / "encoder.md").read_text().split())
    app_doc = " ".join((docs / "app.md").read_text().split())
    limits = f"larger than {MAX_PIXELS // 1_000_000} MP or {MAX_FILE_BYTES // MB} MB"
    downscaled = f"over {WORK_PIXELS // 1_000_000} MP are downscaled to {WORK_PIXELS // 1_000_000} MP"
    assert limits in encoder_doc and downscaled in encoder_doc
    photos_accepted = app_doc[app_doc.index("## Photos accepted") :]
    assert f"at most {MAX_FILE_BYTES // MB} MB and {MAX_PIXELS // 1_000_000} megapixels" in photos_accepted
    work_mp = WORK_PIXELS // 1_000_000
    assert f"photos over {work_mp} MP are downscaled to {work_mp} MP" in photos_accepted
    assert " 40 MP" not in encoder_doc + app_doc
