"""Frames of landmarks: the page ran the hand tracker itself and sends 21 x [x, y, z] instead of a picture.

{"seq", "landmarks": 21 x [x, y, z] | null, "handedness": "Left" | "Right" | null, "aspect": width / height}:
MediaPipe's normalised coordinates of the TRUE (unmirrored) image and its handedness label for that image (the
landmark-set convention, ml/landmark_set.py), null for no hand. A checked frame becomes the same `Hand` the
server's tracker makes, so the Session reads both kinds of frame alike. Anything else is refused with one code,
bad_landmarks, and a message that says what was wrong. The checks walk a bounded number of values, so an
oversized message costs no more to refuse than a good one costs to read.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from app.live.frames import FrameError
from ml.features import N_LANDMARKS
from ml.landmarks import Hand

KEYS = {"seq", "landmarks", "handedness", "aspect"}
HANDEDNESS = ("Left", "Right")
# A landmark of a hand partly out of the picture lies a little outside [0, 1]; one more than a whole picture away is
# no hand. z is on the x scale, relative to the wrist (|z| < 0.5 for real hands).
COORD_RANGE = (-1.0, 2.0)
MAX_DEPTH = 2.0
ASPECT_RANGE = (0.2, 5.0)  # from a 1:5 portrait strip to a 5:1 panorama; a camera gives 9:16 to 16:9
MAX_VALUES = 200  # values a frame may hold in all, nested ones counted (a good one holds 93)
NUMBER_TYPES = {int, float}
SCALAR_TYPES = {int, float, str, type(None)}


@dataclass
class LandmarkFrame:
    """A checked landmark frame: the hand (None: no hand) and the width / height of the image it was found in."""
    hand: Hand | None
    aspect: float


def is_landmark_frame(payload) -> bool:
    """A `frame` payload that carries landmarks rather than an image (the key decides, its value is checked later)."""
    return isinstance(payload, dict) and "landmarks" in payload


def bad(message: str) -> FrameError:
    return FrameError("bad_landmarks", message)


def parse_landmarks(payload: dict) -> tuple[int | None, LandmarkFrame]:
    """A landmark frame's payload -> (seq, LandmarkFrame); FrameError bad_landmarks (bad_payload for a bad seq)."""
    if not _frame_sized(payload) and _count_values(payload, MAX_VALUES) > MAX_VALUES:
        raise bad(f"the landmark frame is too large: at most {MAX_VALUES} values (21 landmarks of x, y, z)")
    unknown = set(payload) - KEYS
    if unknown:
        raise bad(f"unknown field(s) {', '.join(sorted(map(str, unknown)))}; "
                  f"a landmark frame has {', '.join(sorted(KEYS))}")
    seq = payload.get("seq")
    if seq is not None and type(seq) is not int:
        raise FrameError("bad_payload", "seq must be an integer")
    landmarks, handedness = payload["landmarks"], payload.get("handedness")
    aspect = payload.get("aspect")
    if aspect is not None or landmarks is not None:
        aspect = _aspect(aspect)
    if landmarks is None:
        if handedness is not None:
            raise bad("handedness must be null when landmarks is null (no hand)")
        return seq, LandmarkFrame(None, aspect or 1.0)
    if handedness not in HANDEDNESS:
        raise bad(f"handedness must be \"Left\" or \"Right\" (MediaPipe's label for the unmirrored image), "
                  f"not {handedness!r:.40}")
    hand = Hand(_points(landmarks), handedness, 1.0, image_size=(0, 0))  # the page sends the aspect, not the size
    return seq, LandmarkFrame(hand, aspect)


def _aspect(aspect) -> float:
    if not _is_number(aspect):
        raise bad("aspect (the image's width / height) must be a number")
    if not ASPECT_RANGE[0] <= aspect <= ASPECT_RANGE[1]:
        raise bad(f"aspect {aspect:.4g} is not an image's width / height "
                  f"(accepted: {ASPECT_RANGE[0]} to {ASPECT_RANGE[1]})")
    return float(aspect)


def _points(landmarks) -> np.ndarray:
    if not (isinstance(landmarks, list) and len(landmarks) == N_LANDMARKS
            and all(isinstance(p, list) and len(p) == 3 for p in landmarks)):
        raise bad(f"landmarks must be {N_LANDMARKS} points of [x, y, z], or null for no hand")
    # The types at once, then finiteness in numpy: ~10 x cheaper than a check per value (bool is not a number here).
    if not {type(v) for p in landmarks for v in p} <= NUMBER_TYPES:
        raise bad("every landmark coordinate must be a finite number")
    points = np.array(landmarks, dtype=np.float64)
    if not np.isfinite(points).all():
        raise bad("every landmark coordinate must be a finite number")
    low, high = COORD_RANGE
    if not ((points[:, :2] >= low).all() and (points[:, :2] <= high).all() and (abs(points[:, 2]) <= MAX_DEPTH).all()):
        raise bad(f"landmarks lie far outside the image (x and y are fractions of its width and height: "
                  f"accepted {low} to {high}; |z| up to {MAX_DEPTH})")
    return points.astype(np.float32)


def _is_number(value) -> bool:
    return type(value) in NUMBER_TYPES and math.isfinite(value)


def _frame_sized(payload: dict) -> bool:
    """A landmark frame's shape (known keys, no long string, 21 points of 3 or no hand): it holds at most 93 values
    by construction, so it needs no counting. Counting walked every value in Python, a tenth of a millisecond a
    frame, more than the rest of the checks."""
    landmarks = payload["landmarks"]
    return (payload.keys() <= KEYS
            and all(type(v) in SCALAR_TYPES and (type(v) is not str or len(v) <= 64)
                    for k, v in payload.items() if k != "landmarks")
            and (landmarks is None or (type(landmarks) is list and len(landmarks) == N_LANDMARKS
                                       and all(type(p) is list and len(p) == 3 for p in landmarks))))


def _count_values(value, limit: int) -> int:
    """Values in `value`, nested ones counted, stopping once past `limit` (a huge message is not walked whole)."""
    count, stack = 0, [value]
    while stack and count <= limit:
        item = stack.pop()
        count += 1
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item[:limit + 1])
        elif isinstance(item, str) and len(item) > 64:
            count += limit  # a long string: no field of a landmark frame is one
    return count
