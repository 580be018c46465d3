"""ml.features.hand_features: the shape features are invariant to where the hand is, how large, which hand, and the
image's aspect; the motion inputs give the wrist's path in palm units over a window (ml.model.window_inputs)."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import torch

from ml.features import N_FEATURES, N_SHAPE, hand_features
from ml.model import window_inputs

# A hand in pixel-like units: 21 points spread over a palm-sized area (no degenerate, zero-size hands).
hands = arrays(np.float64, (21, 3), elements=st.floats(-50, 50, allow_nan=False)).filter(
    lambda p: np.linalg.norm(p[[5, 9, 13, 17]] - p[0], axis=1).mean() > 5)


def to_normalised(pixels: np.ndarray, width: float, height: float) -> np.ndarray:
    """Pixel coordinates -> MediaPipe's image-normalised ones (x and z by width, y by height)."""
    out = pixels.astype(np.float64).copy()
    out[:, 0] /= width
    out[:, 1] /= height
    out[:, 2] /= width
    return out


@settings(max_examples=60, deadline=None)
@given(hands, st.floats(-200, 200), st.floats(-200, 200), st.floats(0.2, 5))
def test_translation_and_scale_do_not_change_features(hand, dx, dy, scale):
    moved = hand * scale + np.array([dx, dy, 0.0])
    np.testing.assert_allclose(hand_features(to_normalised(moved, 640, 480), 640 / 480)[:N_SHAPE],
                               hand_features(to_normalised(hand, 640, 480), 640 / 480)[:N_SHAPE], atol=1e-4)


@settings(max_examples=60, deadline=None)
@given(hands, st.sampled_from([(640, 480), (480, 360), (200, 200), (1080, 1920)]))
def test_the_same_hand_in_any_image_shape_gives_the_same_features(hand, size):
    w, h = size
    np.testing.assert_allclose(hand_features(to_normalised(hand, w, h), w / h)[:N_SHAPE],
                               hand_features(to_normalised(hand, 100, 100), 1.0)[:N_SHAPE], atol=1e-4)


@settings(max_examples=60, deadline=None)
@given(hands)
def test_a_left_hand_gives_the_features_of_its_mirrored_right_hand(hand):
    mirrored = hand * np.array([-1.0, 1.0, 1.0])
    np.testing.assert_allclose(hand_features(to_normalised(mirrored, 640, 480), 640 / 480, is_left=True),
                               hand_features(to_normalised(hand, 640, 480), 640 / 480, is_left=False), atol=1e-4)


def test_orientation_is_kept_because_it_tells_letters_apart():
    rng = np.random.default_rng(0)
    hand = rng.uniform(0.3, 0.7, (21, 3))
    rotated = hand.copy()
    rotated[:, [0, 1]] = hand[:, [1, 0]]  # a 90 degree turn plus a flip: H vs U, P vs K
    assert not np.allclose(hand_features(hand), hand_features(rotated), atol=1e-3)


def test_features_are_wrist_centred_palm_normalised_float32():
    rng = np.random.default_rng(1)
    f = hand_features(rng.uniform(0, 1, (21, 3)))
    pts = f[:N_SHAPE].reshape(21, 3)
    assert f.shape == (N_FEATURES,) and f.dtype == np.float32
    np.testing.assert_allclose(pts[0], 0, atol=1e-6)
    assert np.linalg.norm(pts[[5, 9, 13, 17]], axis=1).mean() == pytest.approx(1, abs=1e-5)


def test_batches_match_single_samples_with_per_sample_options():
    rng = np.random.default_rng(2)
    X = rng.uniform(0, 1, (4, 21, 3))
    aspect = np.array([1.0, 4 / 3, 16 / 9, 0.5])
    left = np.array([False, True, False, True])
    batch = hand_features(X, aspect, left)
    for i in range(4):
        np.testing.assert_allclose(batch[i], hand_features(X[i], aspect[i], left[i]), atol=1e-6)


@pytest.mark.parametrize("shape", [(63,), (20, 3), (21, 2), (2, 21, 4)])
def test_wrong_shapes_raise_a_clear_error(shape):
    with pytest.raises(ValueError, match="21, 3"):
        hand_features(np.zeros(shape))


@settings(max_examples=40, deadline=None)
@given(hands, st.floats(-15, 15), st.floats(-15, 15), st.floats(0.5, 2),  # within MAX_MOTION palm sizes
       st.sampled_from([(640, 480), (480, 360), (1080, 1920)]), st.booleans())
def test_a_moving_wrist_gives_its_path_in_palm_units_in_any_image_and_either_hand(hand, dx, dy, scale, size, left):
    """A window whose hand slides by (dx, dy) pixels reads, at its first frame, the slide's negative (relative to the
    last frame) in palm sizes; x mirrored for a left hand, so a J hooks the same way for both hands."""
    w, h = size
    flip = np.array([-1.0 if left else 1.0, 1.0, 1.0])
    first, last = hand * scale * flip, (hand * scale + np.array([dx, dy, 0.0])) * flip
    frames = np.stack([hand_features(to_normalised(p, w, h), w / h, is_left=left) for p in (first, first, last)])
    path = window_inputs(torch.as_tensor(frames[None]), motion=True)[0, :, N_SHAPE:].numpy()
    palm = np.linalg.norm(hand[[5, 9, 13, 17]] - hand[0], axis=1).mean() * scale
    np.testing.assert_allclose(path[0], [-dx / palm, -dy / palm, 0.0], atol=1e-3)
    np.testing.assert_allclose(path[2], 0.0, atol=1e-6)
    assert window_inputs(torch.as_tensor(frames[None]), motion=False).shape[-1] == N_SHAPE
