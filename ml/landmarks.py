"""MediaPipe Hands, wrapped once for still images and for video (tracking) frames.

A `Hand` keeps the landmarks exactly as MediaPipe returns them (x, y normalised to the image width and
height, z roughly on the x scale) plus the image size, so features can undo the aspect ratio.
MediaPipe's handedness label assumes a mirrored (selfie) image: on a true camera image a right hand is
labelled "Left". `Hand.is_left` answers for a true (unmirrored) image, which is what the project uses
everywhere (the browser sends unmirrored frames; mirroring the preview is a display choice).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}


@dataclass
class Hand:
    landmarks: np.ndarray  # (21, 3) float32, MediaPipe image-normalised
    handedness: str  # MediaPipe's label ("Left"/"Right", selfie convention)
    score: float  # handedness/presence score
    image_size: tuple[int, int]  # (width, height) of the image the landmarks refer to

    @property
    def is_left(self) -> bool:
        """True for a left hand in a true (unmirrored) image."""
        return self.handedness == "Right"


def tracker_settings(landmarks_config: dict) -> dict:
    """HandTracker's keyword arguments from config.yaml's landmarks section (the one place that reads it)."""
    keys = ("model_complexity", "min_detection_confidence", "min_tracking_confidence", "pad_fraction")
    return {k: landmarks_config[k] for k in keys}


class HandTracker:
    """One MediaPipe Hands graph. Not thread-safe: one per client (or per worker process).

    static=True treats every image on its own (photos) and retries with a padded border when no hand
    is found (tightly cropped fists are otherwise missed); static=False tracks across video frames, so
    a steady hand skips palm detection.
    """

    def __init__(self, static: bool = False, model_complexity: int = 1, min_detection_confidence: float = 0.5,
                 min_tracking_confidence: float = 0.5, pad_fraction: float = 0.35, max_hands: int = 1):
        import mediapipe as mp  # imported here: a ~1 s import that CLIs which never detect hands skip

        self.static = static
        self.pad_fraction = pad_fraction
        self._hands = mp.solutions.hands.Hands(
            static_image_mode=static, max_num_hands=max_hands, model_complexity=model_complexity,
            min_detection_confidence=min_detection_confidence, min_tracking_confidence=min_tracking_confidence)

    def process(self, image_bgr: np.ndarray) -> Hand | None:
        """Landmarks of the most prominent hand in a BGR image, or None."""
        hand = self._detect(image_bgr)
        if hand is None and self.static and self.pad_fraction > 0:
            hand = self._detect_padded(image_bgr)
        return hand

    def all_hands(self, image_bgr: np.ndarray) -> list[Hand]:
        """Every hand found (up to max_hands), most prominent first; no padded retry."""
        results = self._hands.process(cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB))
        h, w = image_bgr.shape[:2]
        hands = []
        for marks, handedness in zip(results.multi_hand_landmarks or [], results.multi_handedness or []):
            points = np.array([[p.x, p.y, p.z] for p in marks.landmark], dtype=np.float32)
            label = handedness.classification[0]
            hands.append(Hand(points, label.label, float(label.score), (w, h)))
        return hands

    def _detect(self, image_bgr: np.ndarray) -> Hand | None:
        hands = self.all_hands(image_bgr)
        return hands[0] if hands else None

    def _detect_padded(self, image_bgr: np.ndarray) -> Hand | None:
        h, w = image_bgr.shape[:2]
        pad = int(round(max(h, w) * self.pad_fraction))
        padded = cv2.copyMakeBorder(image_bgr, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=(0, 0, 0))
        hand = self._detect(padded)
        if hand is None:
            return None
        # Back to the original image's normalised coordinates (z is on the x scale, like x).
        pw, ph = hand.image_size
        pts = hand.landmarks.copy()
        pts[:, 0] = (pts[:, 0] * pw - pad) / w
        pts[:, 1] = (pts[:, 1] * ph - pad) / h
        pts[:, 2] = pts[:, 2] * pw / w
        return Hand(pts, hand.handedness, hand.score, (w, h))

    def reset(self) -> None:
        """Forget the tracked hand: the next frame starts a new video."""
        self._hands.reset()

    def close(self) -> None:
        self._hands.close()

    def __enter__(self) -> "HandTracker":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class ImageError(ValueError):
    """An image file or buffer that cannot be decoded."""


def read_image(path: str | Path) -> np.ndarray:
    """A BGR image from a file; ImageError when it is missing or not a decodable image."""
    data = np.fromfile(str(path), dtype=np.uint8) if Path(path).is_file() else None
    if data is None:
        raise ImageError(f"{path}: no such file")
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise ImageError(f"{path}: not a decodable image")
    return image


def list_image_folder(folder: str | Path) -> list[tuple[Path, str]]:
    """(image path, CLASS) for a folder laid out <class>/<images>; class names are case-insensitive
    (`a` == `A`; `del`, `nothing`, `space` stay lower case). Sorted, so runs are reproducible."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder")
    items = []
    for class_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
        name = canonical_class(class_dir.name)
        items += [(p, name) for p in sorted(class_dir.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES]
    return items


def canonical_class(name: str) -> str:
    """'a' -> 'A', 'DEL' -> 'del': single letters upper case, the three word classes lower case."""
    return name.upper() if len(name) == 1 else name.lower()
