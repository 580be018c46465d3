"""Tiny synthetic landmark sets for fast training tests: one random hand-sized pose per class, each sample
that pose with small noise, so the classes are separable and a few epochs must learn them."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ml.landmark_set import LandmarkSet
from ml.model import CLASSES


def synthetic_set(per_class: int = 10, classes=CLASSES, groups=("synthetic",), seed: int = 0,
                  noise: float = 0.01) -> LandmarkSet:
    rng = np.random.default_rng(seed)
    poses = rng.uniform(0.3, 0.7, (len(classes), 21, 3)).astype(np.float32)
    X, y, group = [], [], []
    for g in groups:
        for c, pose in zip(classes, poses):
            X.append(pose + rng.normal(0, noise, (per_class, 21, 3)).astype(np.float32))
            y += [c] * per_class
            group += [g] * per_class
    n = len(y)
    return LandmarkSet(np.concatenate(X), y, group, [f"synthetic:{i}" for i in range(n)], ["Left"] * n,
                       np.ones(n, np.float32))


def write_synthetic(path: Path, **kwargs) -> Path:
    return synthetic_set(**kwargs).save(path)
