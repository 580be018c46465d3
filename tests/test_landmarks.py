"""ml.landmarks on real photos and a real video: detection, the padded retry, handedness, tracking mode."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from ml.features import hand_features
from tests.conftest import shared_data
from ml.landmarks import HandTracker, ImageError, canonical_class, list_image_folder, read_image


@pytest.fixture(scope="module")
def tracker():
    with HandTracker(static=True) as t:
        yield t


@pytest.fixture(scope="module")
def kaggle():
    return shared_data("kaggle")


@pytest.mark.parametrize("name", ["A/A1008.jpg", "L/L1023.jpg", "V/V1002.jpg"])
def test_a_right_hand_photo_gives_21_landmarks_inside_the_image(tracker, kaggle, name):
    hand = tracker.process(read_image(kaggle / name))
    assert hand is not None
    assert hand.landmarks.shape == (21, 3) and hand.landmarks.dtype == np.float32
    assert hand.image_size == (200, 200)
    assert -0.2 < hand.landmarks[:, :2].min() and hand.landmarks[:, :2].max() < 1.2
    assert not hand.is_left and 0.5 < hand.score <= 1.0


def test_a_mirrored_photo_is_a_left_hand_with_the_same_features(tracker, kaggle):
    image = read_image(kaggle / "V/V1002.jpg")
    right = tracker.process(image)
    left = tracker.process(cv2.flip(image, 1))
    other = tracker.process(read_image(kaggle / "A/A1008.jpg"))
    assert left.is_left and not right.is_left
    same = np.abs(hand_features(left.landmarks, 1.0, left.is_left) - hand_features(right.landmarks, 1.0, False))
    different = np.abs(hand_features(other.landmarks) - hand_features(right.landmarks))
    assert same.mean() < 0.05 < different.mean()


def test_a_tightly_cropped_fist_is_found_only_with_the_padded_retry():
    path = shared_data("ayuraj") / "A" / "hand1_a_bot_seg_2_cropped.jpeg"
    image = read_image(path)
    with HandTracker(static=True, pad_fraction=0) as unpadded:
        assert unpadded.process(image) is None
    with HandTracker(static=True, pad_fraction=0.35) as padded:
        hand = padded.process(image)
    assert hand is not None and hand.image_size == (400, 400)
    # Mapped back to the original crop: the fist fills it, so the points lie (about) inside it.
    assert -0.15 < hand.landmarks[:, :2].min() and hand.landmarks[:, :2].max() < 1.15


def test_no_hand_in_an_empty_scene(tracker, kaggle):
    assert tracker.process(read_image(kaggle / "nothing" / "nothing1001.jpg")) is None


def test_tracking_mode_follows_a_hand_through_real_video_frames():
    capture = cv2.VideoCapture(str(shared_data("signademy") / "B.mp4"))
    frames = []
    while len(frames) < 100:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(cv2.resize(frame, (270, 480)))
    capture.release()
    assert len(frames) == 100
    with HandTracker(static=False) as video:
        hands = [video.process(f) for f in frames[70:100]]  # the held letter, after the hand came up
    found = [h for h in hands if h is not None]
    assert len(found) >= 27
    assert all(h.image_size == (270, 480) for h in found)


def test_read_image_errors_are_clear(tmp_path):
    with pytest.raises(ImageError, match="no such file"):
        read_image(tmp_path / "missing.jpg")
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff not really a jpeg")
    with pytest.raises(ImageError, match="not a decodable image"):
        read_image(bad)


def test_image_folders_have_case_insensitive_classes(tmp_path):
    for cls, name in [("a", "1.jpg"), ("A", "2.PNG"), ("Space", "3.jpeg"), ("b", "notes.txt")]:
        (tmp_path / cls).mkdir(exist_ok=True)
        (tmp_path / cls / name).write_bytes(b"x")
    items = list_image_folder(tmp_path)
    assert sorted(c for _, c in items) == ["A", "A", "space"]
    assert canonical_class("DEL") == "del" and canonical_class("q") == "Q"
    with pytest.raises(FileNotFoundError):
        list_image_folder(tmp_path / "absent")
