"""The one hand normalisation, shared by training and live inference (pure numpy).

21 MediaPipe landmarks -> 67 float32 per frame:
- 63 shape features: the aspect ratio undone (x and z were normalised to the image width, y to its height), a
  left hand mirrored onto a right one, the wrist moved to the origin, and the result divided by the palm size.
  So they do not depend on where the hand is, how large it is, or which hand signs; they still depend on its
  orientation, which tells letters apart (H from U, P from K).
- 4 motion inputs: where the wrist is in the (aspect-corrected, mirrored) image and the palm size. One frame
  says nothing by them; over a window the model turns them into the wrist's path in palm units relative to the
  last frame (ml.model.window_inputs), which is what J and Z are (feature version 2).
A version-1 model reads the 63 shape features only.
"""
from __future__ import annotations

import numpy as np

FEATURE_VERSION = 2
N_LANDMARKS = 21
N_SHAPE = N_LANDMARKS * 3
N_FEATURES = N_SHAPE + 4
WRIST = 0
PALM_KNUCKLES = (5, 9, 13, 17)  # index, middle, ring, pinky MCP


def hand_features(landmarks: np.ndarray, aspect: float | np.ndarray = 1.0,
                  is_left: bool | np.ndarray = False) -> np.ndarray:
    """(..., 21, 3) landmarks -> (..., 67) float32 features (63 shape, wrist x y z, palm size).

    aspect: image width / height of the image the landmarks came from (per sample or one for all).
    is_left: True where the hand is a left hand in a true (unmirrored) image; it is mirrored onto a right.
    """
    pts = np.array(landmarks, dtype=np.float32, copy=True)
    if pts.shape[-2:] != (N_LANDMARKS, 3):
        raise ValueError(f"landmarks must end in (21, 3), got {pts.shape}")
    aspect = np.asarray(aspect, dtype=np.float32)[..., None]
    pts[..., 0] *= aspect
    pts[..., 2] *= aspect
    sign = np.where(np.asarray(is_left, dtype=bool), -1.0, 1.0).astype(np.float32)[..., None]
    pts[..., 0] *= sign
    wrist = pts[..., WRIST, :].copy()
    pts -= pts[..., WRIST:WRIST + 1, :]
    palm = np.maximum(np.linalg.norm(pts[..., PALM_KNUCKLES, :], axis=-1).mean(axis=-1), 1e-6)
    pts /= palm[..., None, None]
    return np.concatenate([pts.reshape(*pts.shape[:-2], N_SHAPE), wrist, palm[..., None]], axis=-1,
                          dtype=np.float32)


def still_features(shape: np.ndarray) -> np.ndarray:
    """(..., 63) shape features -> (..., 67): a hand at the image origin with palm size 1 (no motion)."""
    shape = np.asarray(shape, dtype=np.float32)
    extra = np.zeros((*shape.shape[:-1], 4), np.float32)
    extra[..., 3] = 1.0
    return np.concatenate([shape[..., :N_SHAPE], extra], axis=-1)
