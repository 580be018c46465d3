"""The data sets a training job can use: the shared sources named in config.yaml's data section, and the
samples people recorded from the live page (instance/datasets/<name>.npz, landmark-set files).

A job names data sets by name only; this module turns a name into what `python -m ml.train --datasets`
takes (a config key, or the path of a recorded .npz). Names are validated, so none reaches outside the folder.
"""
from __future__ import annotations

import re
import threading
from collections import Counter
from pathlib import Path

import numpy as np

from ml.config import data_path
from ml.datasets import SOURCES
from ml.landmark_set import LandmarkSet

BUILTIN = SOURCES  # the sources ml.train knows by name
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


class DatasetError(ValueError):
    pass


class DatasetStore:
    def __init__(self, config: dict, folder: str | Path):
        self.config = config
        self.folder = Path(folder)
        self._lock = threading.Lock()  # appends are read-modify-write of one file

    def validate_name(self, name: str) -> str:
        if not isinstance(name, str) or not NAME.match(name):
            raise DatasetError(f"data set name {name!r}: 1-64 letters, digits, '-' or '_', starting with a "
                               "letter or digit")
        return name

    def recorded_path(self, name: str) -> Path:
        return self.folder / f"{self.validate_name(name)}.npz"

    def train_argument(self, name: str) -> str:
        """What ml.train's --datasets takes for `name`; DatasetError when there is no such data set."""
        if name in BUILTIN:
            if not data_path(self.config, name).exists():
                raise DatasetError(f"data set {name} is not on this machine ({data_path(self.config, name)})")
            return name
        path = self.recorded_path(name)
        if not path.is_file():
            raise DatasetError(f"no data set {name!r} (known: {', '.join(d['name'] for d in self.list())})")
        return str(path.resolve())

    def list(self) -> list[dict]:
        sets = [{"name": n, "kind": "shared", "available": data_path(self.config, n).exists()} for n in BUILTIN]
        for path in self._recorded_files():
            try:
                ls = LandmarkSet.load(path)
            except (OSError, ValueError) as exc:
                sets.append({"name": path.stem, "kind": "recorded", "available": False, "error": str(exc)})
                continue
            sets.append({"name": path.stem, "kind": "recorded", "available": True, "samples": len(ls),
                         "classes": dict(sorted(Counter(ls.y.tolist()).items())),
                         "signers": sorted(set(ls.group.tolist()))})
        return sets

    def writable_path(self, name: str) -> Path:
        """Where recorded set `name` lives; DatasetError for a bad name or one of the shared sources'."""
        if name in BUILTIN:
            raise DatasetError(f"data set name {name!r} is reserved for a shared source")
        return self.recorded_path(name)

    def _recorded_files(self) -> list[Path]:
        # NAME skips the temp files of an atomic write in progress (".name.xxxx.npz") and files not made here.
        files = sorted(self.folder.glob("*.npz")) if self.folder.is_dir() else []
        return [p for p in files if NAME.match(p.stem)]

    def append(self, name: str, samples: LandmarkSet, max_samples: int, max_datasets: int) -> int:
        """Add samples to recorded set `name` (created if new); returns its new size. Atomic on disk."""
        path = self.writable_path(name)
        with self._lock:
            if not path.exists() and len(self._recorded_files()) >= max_datasets:
                raise DatasetError(f"there are already {max_datasets} recorded data sets: add to one of them")
            current = LandmarkSet.load(path) if path.exists() else None
            size = (len(current) if current is not None else 0) + len(samples)
            if size > max_samples:
                raise DatasetError(f"data set {name} would hold {size} samples, over the limit of {max_samples}")
            merged = samples if current is None else LandmarkSet.concat([current, samples])
            merged.save(path)
        return size


def frames_to_set(landmarks: list[np.ndarray], label: str, signer: str, handedness: list[str],
                  aspect: list[float], source: str) -> LandmarkSet:
    n = len(landmarks)
    return LandmarkSet(X=np.stack(landmarks), y=[label] * n, group=[signer] * n,
                       path=[f"{source}:{i}" for i in range(n)], handedness=handedness, aspect=aspect)
