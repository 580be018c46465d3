"""Frames from the browser: payload checks and decoding, with one error code per way a frame can be bad.

Everything is checked before the decoder runs: the byte size, the format (JPEG or PNG by magic bytes,
whatever the client claims) and the pixel count the header declares, so a tiny file that declares a huge
image (a decompression bomb) is refused without allocating it.
"""
from __future__ import annotations

import struct

import cv2
import numpy as np

from app.live.blocking import native

JPEG_MAGIC = b"\xff\xd8\xff"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# JPEG start-of-frame markers carry the size; C4 (DHT), C8 (JPG) and CC (DAC) share the range but do not.
JPEG_SOF = set(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
JPEG_STANDALONE = set(range(0xD0, 0xD8)) | {0x01}  # markers without a length field


class FrameError(ValueError):
    """An `error` a client is sent, a refused frame or any other: a stable `code` (the page shows its own plain
    message for it, static/js/errors.js) and a message with the details. Every code the server sends is written
    as the literal first argument of a FrameError: tests/test_errors.py finds them that way, so a new code
    without a message on the page or a row in the README fails it."""

    def __init__(self, code: str, message: str, field: str | None = None):
        super().__init__(message)
        self.code, self.message, self.field = code, message, field

    def as_dict(self, seq: int | None = None) -> dict:
        return {"code": self.code, "message": self.message, "seq": seq, **({"field": self.field} if self.field else {})}


def parse_payload(payload) -> tuple[int | None, bytes]:
    """A `frame` event's payload -> (seq, image bytes): raw bytes, or {"seq": int, "image": bytes}."""
    if isinstance(payload, (bytes, bytearray, memoryview)):
        return None, bytes(payload)
    if isinstance(payload, dict):
        seq = payload.get("seq")
        if seq is not None and (not isinstance(seq, int) or isinstance(seq, bool)):
            raise FrameError("bad_payload", "seq must be an integer")
        image = payload.get("image")
        if isinstance(image, (bytes, bytearray, memoryview)):
            return seq, bytes(image)
        raise FrameError("bad_payload", "the frame needs binary image bytes in 'image'")
    raise FrameError("bad_payload", "a frame is JPEG/PNG bytes or {seq, image}")


def image_format(data: bytes) -> str:
    if data.startswith(JPEG_MAGIC):
        return "jpeg"
    if data.startswith(PNG_MAGIC):
        return "png"
    raise FrameError("unsupported_format", "only JPEG and PNG frames are accepted")


def declared_size(data: bytes) -> tuple[int, int]:
    """(width, height) from the image header, without decoding; FrameError when the header is broken."""
    if image_format(data) == "png":
        if len(data) < 24 or data[12:16] != b"IHDR":
            raise FrameError("bad_image", "PNG without a valid header")
        return struct.unpack(">II", data[16:24])
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            break
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in JPEG_STANDALONE:
            pos += 2
            continue
        if marker == 0xDA:  # start of scan before any size
            break
        (length,) = struct.unpack(">H", data[pos + 2:pos + 4])
        if marker in JPEG_SOF:
            if pos + 9 > len(data):
                break
            height, width = struct.unpack(">HH", data[pos + 5:pos + 9])
            return width, height
        pos += 2 + length
    raise FrameError("bad_image", "JPEG without a readable frame header")


def decode_frame(data: bytes, max_bytes: int, max_pixels: int) -> np.ndarray:
    """Checked image bytes -> BGR array. Raises FrameError (too_large, unsupported_format, bad_image,
    too_many_pixels) and never runs the decoder on a frame that fails a check."""
    if len(data) == 0:
        raise FrameError("bad_image", "empty frame")
    if len(data) > max_bytes:
        raise FrameError("too_large", f"frame of {len(data)} bytes; the limit is {max_bytes}")
    width, height = declared_size(data)
    if width == 0 or height == 0:
        raise FrameError("bad_image", f"image declares {width}x{height} pixels")
    if width * height > max_pixels:
        raise FrameError("too_many_pixels", f"image declares {width}x{height} pixels; the limit is {max_pixels}")
    image = native(cv2.imdecode, np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise FrameError("bad_image", "the image could not be decoded")
    return image
