"""Training windows from still samples, and the pose augmentations that make a model generalise to people
and cameras it never saw. Pure numpy, vectorised over samples; every random draw comes from one Generator.

A still sample (one photo, one recorded frame) becomes a window of T frames the way the live pipeline sees a
held letter: the same pose repeated, each frame with its own small landmark noise (MediaPipe's tracking
jitter) around a slowly drifting hand orientation. Per sample, before that: a random camera angle
(rotation about all three axes), an aspect error (x and y scaled apart), finger lengths and a per-landmark
offset (other people's hands). Everything works on feature-space points (wrist at the origin, palm size
1) and is re-normalised with ml.features.hand_features, so augmented windows stay in the live feature space.

Motion (feature version 2): a still photo has none, so every training window's wrist wanders a little (a held
hand is never quite still), and some J and Z windows follow a drawn path: J a stroke down with a hook, Z a zigzag,
of random size, speed, phase and left-right sense (which way a signer's J hooks in a true image is not
something the still sources show). The rest of J and Z stay still, so a still J photo still reads as J.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ml.features import N_FEATURES, N_LANDMARKS, N_SHAPE, hand_features
from ml.model import CLASSES

# Landmark chains from each finger's base knuckle to its tip (MediaPipe Hands indices).
FINGERS = ((1, 2, 3, 4), (5, 6, 7, 8), (9, 10, 11, 12), (13, 14, 15, 16), (17, 18, 19, 20))


@dataclass
class AugmentConfig:
    roll_deg: float = 15.0  # in-plane rotation
    tilt_deg: float = 20.0  # camera angle: rotation about x and y
    aspect: float = 0.10  # x/y scaled apart by up to +-10 %
    finger_length: float = 0.12  # each finger's bones scaled by up to +-12 %
    shape_noise: float = 0.03  # per-sample, per-landmark offset (palm units)
    jitter: float = 0.02  # per-frame landmark noise (palm units): tracking jitter of a held hand
    drift_deg: float = 2.0  # per-frame orientation random walk of a held hand
    mirror: float = 0.0  # probability of mirroring a sample (robustness to a wrong handedness label)
    transition: float = 0.2  # probability that a window starts with frames of another sample (the previous letter)
    wander: float = 0.03  # per-frame wrist random walk (palm units): a held hand moves a little
    motion: float = 0.5  # probability that a J or Z window follows its drawn path

    def as_dict(self) -> dict:
        return asdict(self)


def points(features: np.ndarray) -> np.ndarray:
    """(..., 63 or 67) features -> (..., 21, 3) points of the shape features."""
    features = np.asarray(features, dtype=np.float32)[..., :N_SHAPE]
    return features.reshape(*features.shape[:-1], N_LANDMARKS, 3)


def renormalise(pts: np.ndarray) -> np.ndarray:
    """(..., 21, 3) points -> (..., 67) features: wrist to the origin, palm size to 1 again."""
    return hand_features(pts)


def held_windows(features: np.ndarray, window: int) -> np.ndarray:
    """(N, 67) -> (N, T, 67): each pose held perfectly still (evaluation windows)."""
    features = np.asarray(features, dtype=np.float32)
    return np.repeat(features[:, None, :], window, axis=1)


def rotations(angles: np.ndarray) -> np.ndarray:
    """(..., 3) angles in radians about x, y, z -> (..., 3, 3) rotation matrices Rz @ Ry @ Rx."""
    cx, cy, cz = np.cos(angles[..., 0]), np.cos(angles[..., 1]), np.cos(angles[..., 2])
    sx, sy, sz = np.sin(angles[..., 0]), np.sin(angles[..., 1]), np.sin(angles[..., 2])
    one, zero = np.ones_like(cx), np.zeros_like(cx)
    rx = np.stack([one, zero, zero, zero, cx, -sx, zero, sx, cx], -1).reshape(*cx.shape, 3, 3)
    ry = np.stack([cy, zero, sy, zero, one, zero, -sy, zero, cy], -1).reshape(*cx.shape, 3, 3)
    rz = np.stack([cz, -sz, zero, sz, cz, zero, zero, zero, one], -1).reshape(*cx.shape, 3, 3)
    return (rz @ ry @ rx).astype(np.float32)


def augment_poses(features: np.ndarray, rng: np.random.Generator, cfg: AugmentConfig) -> np.ndarray:
    """(N, 63 or 67) -> (N, 21, 3) augmented points: other hands, other cameras."""
    pts = points(features).copy()
    n = len(pts)
    # Finger lengths: scale each bone of a finger by one factor, carrying the rest of the finger along.
    for chain in FINGERS:
        factor = 1.0 + rng.uniform(-cfg.finger_length, cfg.finger_length, (n, 1)).astype(np.float32)
        original = pts[:, chain].copy()
        for k in range(1, len(chain)):  # the base knuckle stays; bones beyond it stretch
            pts[:, chain[k]] = pts[:, chain[k - 1]] + (original[:, k] - original[:, k - 1]) * factor
    pts += rng.normal(0.0, cfg.shape_noise, pts.shape).astype(np.float32)
    angles = np.deg2rad(np.stack([rng.uniform(-cfg.tilt_deg, cfg.tilt_deg, n),
                                  rng.uniform(-cfg.tilt_deg, cfg.tilt_deg, n),
                                  rng.uniform(-cfg.roll_deg, cfg.roll_deg, n)], -1))
    pts = pts @ np.swapaxes(rotations(angles), -1, -2)
    stretch = 1.0 + rng.uniform(-cfg.aspect, cfg.aspect, (n, 1)).astype(np.float32)
    pts[..., 0] *= stretch
    pts[..., 1] /= stretch
    if cfg.mirror > 0:
        pts[rng.random(n) < cfg.mirror, :, 0] *= -1
    return pts


def noisy_held_windows(pts: np.ndarray, window: int, rng: np.random.Generator, cfg: AugmentConfig) -> np.ndarray:
    """(N, 21, 3) points -> (N, T, 67): a held pose with per-frame tracking jitter and a slow drift."""
    n = len(pts)
    steps = rng.normal(0.0, np.deg2rad(cfg.drift_deg), (n, window, 3))
    drift = rotations(np.cumsum(steps, axis=1))  # (N, T, 3, 3)
    frames = np.einsum("ntij,nlj->ntli", drift, pts).astype(np.float32)
    frames += rng.normal(0.0, cfg.jitter, frames.shape).astype(np.float32)
    return renormalise(frames)


def training_windows(features: np.ndarray, labels: np.ndarray, window: int, rng: np.random.Generator,
                     cfg: AugmentConfig | None) -> np.ndarray:
    """(N, 67) features -> (N, T, 67) augmented windows for one epoch (labels: CLASSES indices).

    cfg None: no augmentation (held windows). A transition window begins with up to T/2 frames of a
    random sample of another class, as when the signer moves from the previous letter to this one."""
    if cfg is None:
        return held_windows(features, window)
    windows = noisy_held_windows(augment_poses(features, rng, cfg), window, rng, cfg)
    windows[..., N_SHAPE:N_SHAPE + 3] += wrist_paths(labels, window, rng, cfg)
    n = len(windows)
    if cfg.transition > 0 and window > 1 and n > 1:
        chosen = np.flatnonzero(rng.random(n) < cfg.transition)
        others = rng.integers(0, n, len(chosen))
        differ = labels[others] != labels[chosen]
        chosen, others = chosen[differ], others[differ]
        lead = rng.integers(1, max(2, window // 2 + 1), len(chosen))
        for i, j, k in zip(chosen, others, lead):
            windows[i, :k] = windows[j, :k]
    return windows.reshape(n, window, N_FEATURES)


# Drawn wrist paths (palm units, image x right and y down, starting at the origin), traced over the motion.
LETTER_PATHS = {
    "J": np.array([[0, 0], [0, 0.7], [-0.15, 1.05], [-0.5, 1.2], [-0.8, 1.05]], np.float32),
    "Z": np.array([[0, 0], [1, 0], [0, 0.8], [1, 0.8]], np.float32),
}


def trace(keypoints: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Points at fractions u (any shape, 0..1) of the way along a polyline, by arc length -> (..., 2)."""
    seg = np.linalg.norm(np.diff(keypoints, axis=0), axis=1)
    at = np.concatenate([[0], np.cumsum(seg)]) / seg.sum()
    return np.stack([np.interp(u, at, keypoints[:, k]) for k in range(2)], axis=-1)


def wrist_paths(labels: np.ndarray, window: int, rng: np.random.Generator, cfg: AugmentConfig) -> np.ndarray:
    """(N,) CLASSES indices -> (N, T, 3) wrist offsets: a wander for every window, a letter's path for some."""
    n = len(labels)
    paths = np.cumsum(rng.normal(0.0, cfg.wander, (n, window, 3)), axis=1).astype(np.float32)
    for letter, keypoints in LETTER_PATHS.items():
        chosen = np.flatnonzero((np.asarray(labels) == CLASSES.index(letter)) & (rng.random(n) < cfg.motion))
        if not len(chosen):
            continue
        k = len(chosen)
        frames = rng.uniform(8, 18, (k, 1))  # the motion's length in frames (~0.5-1.2 s at 15 fps)
        end = rng.uniform(3, frames[:, 0] + window / 2)[:, None]  # the window's last frame, from the start
        u = np.clip((end - window + 1 + np.arange(window)) / frames, 0, 1)
        xy = trace(keypoints, u) * rng.uniform(0.8, 2.0, (k, 1, 1))
        xy[..., 0] *= rng.choice([-1.0, 1.0], (k, 1))
        paths[chosen, :, :2] += xy.astype(np.float32)
    return paths
