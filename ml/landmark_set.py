"""The landmark-set file (.npz): what preprocess writes, what training and evaluation read, what the
admin's sample recorder appends to. One format for every source.

X           (N, 21, 3) float32  landmarks as MediaPipe returns them (image-normalised)
y           (N,) str            class name (A-Z, del, nothing, space)
group       (N,) str            signer / recording id (for person-wise splits)
path        (N,) str            where the sample came from (image path, or "<source>:<row>")
handedness  (N,) str            MediaPipe's label for a TRUE (unmirrored) image: "Left" is a right hand
aspect      (N,) float32        width / height of the image the landmarks refer to
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ml.features import hand_features

FIELDS = ("X", "y", "group", "path", "handedness", "aspect")


@dataclass
class LandmarkSet:
    X: np.ndarray
    y: np.ndarray
    group: np.ndarray
    path: np.ndarray
    handedness: np.ndarray
    aspect: np.ndarray

    def __post_init__(self):
        self.X = np.asarray(self.X, dtype=np.float32).reshape(-1, 21, 3)
        n = len(self.X)
        for name in FIELDS[1:5]:
            setattr(self, name, np.asarray(getattr(self, name), dtype=str).reshape(n))
        self.aspect = np.asarray(self.aspect, dtype=np.float32).reshape(n)

    def __len__(self) -> int:
        return len(self.X)

    def features(self) -> np.ndarray:
        """(N, 63) normalised features (ml.features.hand_features), left hands mirrored."""
        return hand_features(self.X, self.aspect, self.handedness == "Right")

    def subset(self, mask: np.ndarray) -> "LandmarkSet":
        return LandmarkSet(*(getattr(self, f)[mask] for f in FIELDS))

    @staticmethod
    def concat(sets: list["LandmarkSet"]) -> "LandmarkSet":
        return LandmarkSet(*(np.concatenate([getattr(s, f) for s in sets]) for f in FIELDS))

    def save(self, path: str | os.PathLike) -> Path:
        """Atomic write (temp file + rename)."""
        return save_npz(path, **{k: getattr(self, k) for k in FIELDS})

    @staticmethod
    def load(path: str | os.PathLike) -> "LandmarkSet":
        with np.load(path, allow_pickle=False) as data:
            missing = [f for f in FIELDS if f not in data]
            if missing:
                raise ValueError(f"{path}: not a landmark set (missing {', '.join(missing)})")
            return LandmarkSet(*(data[f] for f in FIELDS))


def save_npz(path: str | os.PathLike, /, **arrays: np.ndarray) -> Path:
    """A compressed .npz written atomically (temp file + rename): a reader never sees half a file. `path` is
    positional only: a landmark set has an array named "path"."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".npz")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez_compressed(f, **arrays)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
