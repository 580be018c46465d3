"""Frame validation: every bad frame is refused with its code, before decoding; good frames decode."""
from __future__ import annotations

import struct
import zlib

import cv2
import numpy as np
import pytest

from app.live.frames import FrameError, decode_frame, declared_size, parse_payload
from ml.landmarks import list_image_folder
from tests.conftest import shared_data

MAX_BYTES, MAX_PIXELS = 1_000_000, 4_000_000


def encode(image: np.ndarray, ext: str) -> bytes:
    return cv2.imencode(ext, image)[1].tobytes()


def png_declaring(width: int, height: int) -> bytes:
    """A tiny, well-formed PNG header that declares width x height (a decompression bomb's shape)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return b"\x89PNG\r\n\x1a\n" + chunk + b"\x00" * 64


def jpeg_declaring(width: int, height: int) -> bytes:
    """A real JPEG whose SOF header is rewritten to declare width x height."""
    data = bytearray(encode(np.zeros((8, 8, 3), np.uint8), ".jpg"))
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def code_of(data: bytes, max_bytes: int = MAX_BYTES, max_pixels: int = MAX_PIXELS) -> str:
    with pytest.raises(FrameError) as info:
        decode_frame(data, max_bytes, max_pixels)
    return info.value.code


@pytest.fixture(scope="module")
def photo() -> bytes:
    path = next(p for p, c in list_image_folder(shared_data("kaggle")) if c == "A")
    return path.read_bytes()


def test_a_real_photo_decodes(photo):
    image = decode_frame(photo, MAX_BYTES, MAX_PIXELS)
    assert image.shape == (200, 200, 3) and image.dtype == np.uint8
    assert image.std() > 10  # a photo, not a blank


def test_png_decodes_to_the_same_pixels():
    image = np.random.default_rng(0).integers(0, 255, (30, 40, 3), dtype=np.uint8)
    assert np.array_equal(decode_frame(encode(image, ".png"), MAX_BYTES, MAX_PIXELS), image)


def test_declared_size_matches_the_image():
    image = np.zeros((30, 40, 3), np.uint8)
    assert declared_size(encode(image, ".jpg")) == (40, 30)
    assert declared_size(encode(image, ".png")) == (40, 30)


def test_progressive_jpeg_size_is_read():
    image = np.zeros((48, 64, 3), np.uint8)
    data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])[1].tobytes()
    assert b"\xff\xc2" in data
    assert declared_size(data) == (64, 48)


def test_over_the_byte_cap_is_too_large(photo):
    assert code_of(photo, max_bytes=len(photo) - 1) == "too_large"


@pytest.mark.parametrize("data", [b"GIF89a" + b"\x00" * 100, b"BM" + b"\x00" * 100, b"hello", b"<svg/>"])
def test_other_formats_are_unsupported(data):
    assert code_of(data) == "unsupported_format"


def test_empty_frame_is_bad():
    assert code_of(b"") == "bad_image"


def test_png_bomb_is_refused_before_decoding():
    assert code_of(png_declaring(100_000, 100_000)) == "too_many_pixels"


def test_jpeg_bomb_is_refused_before_decoding():
    assert code_of(jpeg_declaring(65_000, 65_000)) == "too_many_pixels"


def test_zero_sized_image_is_bad():
    assert code_of(png_declaring(0, 10)) == "bad_image"


def test_truncated_jpeg_is_bad(photo):
    assert code_of(photo[:4]) == "bad_image"  # magic only, no header
    assert code_of(photo[:200]) == "bad_image"  # header, no pixels


def test_corrupt_png_is_bad():
    assert code_of(png_declaring(10, 10)) == "bad_image"  # header fine, no image data


def test_payload_forms(photo):
    assert parse_payload(photo) == (None, photo)
    assert parse_payload(bytearray(photo)) == (None, photo)
    assert parse_payload({"seq": 7, "image": photo}) == (7, photo)
    assert parse_payload({"image": photo}) == (None, photo)


@pytest.mark.parametrize("payload", ["text", 42, None, [b"x"], {"seq": 1}, {"seq": 1, "image": "b64"},
                                     {"seq": "1", "image": b"x"}, {"seq": True, "image": b"x"}])
def test_bad_payloads(payload):
    with pytest.raises(FrameError) as info:
        parse_payload(payload)
    assert info.value.code == "bad_payload"
    assert info.value.as_dict(3) == {"code": "bad_payload", "message": info.value.message, "seq": 3}
