"""The one hand normalisation, shared by training and live inference (pure numpy).

21 MediaPipe landmarks -> 63 float32: the aspect ratio undone (x and z were normalised to the image
width, y to its height), a left hand mirrored onto a right one, the wrist moved to the origin, and the
result divided by the palm size. So the features do not depend on where the hand is, how large it is,
or which hand signs; they still depend on its orientation, which tells letters apart (H from U, P from K).
"""
from __future__ import annotations

import numpy as np

FEATURE_VERSION = 1
N_LANDMARKS = 21
N_FEATURES = N_LANDMARKS * 3
WRIST = 0
PALM_KNUCKLES = (5, 9, 13, 17)  # index, middle, ring, pinky MCP


def hand_features(landmarks: np.ndarray, aspect: float | np.ndarray = 1.0,
                  is_left: bool | np.ndarray = False) -> np.ndarray:
    """(..., 21, 3) landmarks -> (..., 63) float32 features.

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
    pts -= pts[..., WRIST:WRIST + 1, :]
    palm = np.linalg.norm(pts[..., PALM_KNUCKLES, :], axis=-1).mean(axis=-1)
    pts /= np.maximum(palm, 1e-6)[..., None, None]
    return pts.reshape(*pts.shape[:-2], N_FEATURES)
