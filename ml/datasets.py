"""Every data source as a LandmarkSet in the project's one convention (a TRUE, unmirrored image; see
ml/landmark_set.py), so that one feature function serves all of them and the live webcam.

Photos (kaggle, ayuraj) go through ml.preprocess once and are cached under config data.cache.
The landmark sources (asl_ai, bisonhacks) were recorded from selfie-view webcams; how each is brought to
the convention (mirror, aspect) was decided on cross-source accuracy: see docs/EXPERIMENTS.md.
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np

from ml.config import data_path, load_config, project_path
from ml.landmark_set import LandmarkSet
from ml.landmarks import IMAGE_SUFFIXES, canonical_class, tracker_settings
from ml.model import CLASSES
from ml.preprocess import VIDEO_SUFFIXES, failures_path, preprocess_folder, preprocess_videos, save

SOURCES = ("kaggle", "ayuraj", "asl_ai", "bisonhacks", "signademy")

# Per-source conventions for the webcam landmark sets, chosen on evidence (docs/EXPERIMENTS.md, "conventions").
# mirrored: the recording is a selfie view, so x is flipped back (x -> 1 - x) to a true image.
# right_hand: which hand the (unmirrored) recording shows; handedness is stored as MediaPipe labels it.
# aspect: width / height of the webcam image the normalised landmarks refer to.
CONVENTIONS = {
    "asl_ai": dict(mirrored=True, right_hand=True, aspect=4 / 3),
    "bisonhacks": dict(mirrored=True, right_hand=True, aspect=4 / 3),
}
# bisonhacks: besides 24 letters, each person has a 100-row block labelled "I Love You" (the ILY sign, read
# as a doubled "I" by a label's first word): not a fingerspelling class, so it is dropped (counted in the log).

# asl-digits-ankara: the ASL digits whose hand shape is a letter's (its SOURCE.txt); the other digits are not used.
ANKARA_LETTERS = {"0": "O", "2": "V", "6": "W", "9": "F"}
_AYURAJ_PERSON = re.compile(r"(hand\d+)_", re.IGNORECASE)


def load_dataset(name: str, config: dict | None = None, **convention) -> LandmarkSet:
    """A source by name (a key of config.yaml's data section) or a landmark-set file (*.npz)."""
    config = config or load_config()
    if str(name).endswith(".npz"):
        path = project_path(name)
        if not path.is_file():
            raise FileNotFoundError(f"{name}: no such landmark set")
        return LandmarkSet.load(path)
    loaders = {"kaggle": _kaggle, "ayuraj": _ayuraj, "asl_ai": _asl_ai, "bisonhacks": _bisonhacks,
               "signademy": _signademy, "ankara": _ankara}
    if name not in loaders:
        raise ValueError(f"unknown data set {name!r}: use one of {', '.join(SOURCES)} or a .npz file")
    path = data_path(config, name)
    if not path.exists():
        raise FileNotFoundError(f"data set {name!r}: {path} is absent")
    return loaders[name](path, config, **convention)


def cached_landmarks(name: str, folder: Path, config: dict, videos: bool = False) -> LandmarkSet:
    """The photos (or letter clips) of `folder` as a landmark set, preprocessed once (the cache is redone
    when the files or the landmark settings change)."""
    cache = project_path(config["data"]["cache"]) / f"{name}.npz"
    suffixes = VIDEO_SUFFIXES if videos else IMAGE_SUFFIXES
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in suffixes)
    stamp = {"files": len(files), "bytes": sum(p.stat().st_size for p in files), **tracker_settings(config["landmarks"])}
    stamp_path = cache.with_suffix(".stamp.json")
    if cache.is_file() and stamp_path.is_file() and json.loads(stamp_path.read_text()) == stamp:
        return LandmarkSet.load(cache)
    print(f"preprocessing {folder} ({len(files)} files) into {cache} ...", file=sys.stderr)
    result = (preprocess_videos if videos else preprocess_folder)(folder, group=name, config=config)
    save(result, cache)
    stamp_path.write_text(json.dumps(stamp))
    return result.landmarks


def photo_failures(name: str, config: dict | None = None) -> list[dict]:
    """The images of a cached photo source where no hand was found."""
    config = config or load_config()
    path = failures_path(project_path(config["data"]["cache"]) / f"{name}.npz")
    return json.loads(path.read_text())["failures"] if path.is_file() else []


def _kaggle(path: Path, config: dict, majority_hand: bool = True) -> LandmarkSet:
    data = cached_landmarks("kaggle", path, config)
    return one_hand_per_signer(data) if majority_hand else data


def _ayuraj(path: Path, config: dict, majority_hand: bool = True) -> LandmarkSet:
    data = cached_landmarks("ayuraj", path, config)
    data.group = np.array([f"ayuraj-{_AYURAJ_PERSON.search(Path(p).name).group(1).lower()}"
                           for p in data.path])
    return one_hand_per_signer(data) if majority_hand else data


def _signademy(path: Path, config: dict, majority_hand: bool = True) -> LandmarkSet:
    """One person's letter clips (true images of a right hand, or a mirrored left one: the same features),
    the held second half of each."""
    data = cached_landmarks("signademy", path, config, videos=True)
    return one_hand_per_signer(data) if majority_hand else data


def _ankara(path: Path, config: dict) -> LandmarkSet:
    """~218 students' photos of digits (no signer ids: one group); 0, 2, 6, 9 taken as O, V, W, F. Each photo
    keeps MediaPipe's own handedness (many people, either hand)."""
    data = cached_landmarks("ankara", path, config)
    data = data.subset(np.isin(data.y, list(ANKARA_LETTERS)))
    data.y = np.array([ANKARA_LETTERS[d] for d in data.y])
    return data


def one_hand_per_signer(data: LandmarkSet) -> LandmarkSet:
    """Each signer's majority handedness for all of their photos. MediaPipe's per-photo label is wrong for a
    few poses (192 of 4,687 Kaggle photos, all of one right-handed signer, came out "left"); mirroring those
    made them unrecognisable: 6.8 % correct vs 67 % overall (docs/EXPERIMENTS.md)."""
    for g in np.unique(data.group):
        m = data.group == g
        labels, counts = np.unique(data.handedness[m], return_counts=True)
        data.handedness[m] = labels[counts.argmax()]
    return data


def _webcam_set(X: np.ndarray, y, group, path, mirrored: bool, right_hand: bool, aspect: float) -> LandmarkSet:
    X = np.array(X, dtype=np.float32).reshape(-1, 21, 3)
    if mirrored:
        X[..., 0] = 1.0 - X[..., 0]  # z (depth) is unchanged by a left-right flip
    # MediaPipe's label for a true image: a right hand is labelled "Left".
    label = "Left" if right_hand else "Right"
    n = len(X)
    return LandmarkSet(X, y, group, path, [label] * n, np.full(n, aspect, np.float32))


def _asl_ai(path: Path, config: dict, **convention) -> LandmarkSet:
    conv = {**CONVENTIONS["asl_ai"], **convention}
    with np.load(path, allow_pickle=False) as data:
        X, y, frame = data["X"], data["y"].astype(str), data["frame"]
    order = np.lexsort((frame, y))  # each letter's recording in frame order: contiguous splits stay honest
    X, y, frame = X[order], y[order], frame[order]
    return _webcam_set(X, y, ["asl_ai"] * len(y), [f"asl_ai:{c}:{k}" for c, k in zip(y, frame)], **conv)


def _bisonhacks(path: Path, config: dict, **convention) -> LandmarkSet:
    conv = {**CONVENTIONS["bisonhacks"], **convention}
    sets = []
    for csv in sorted(path.glob("asl_landmarks_person*.csv")):
        person = csv.stem.rsplit("_", 1)[-1]
        labels = np.array([canonical_class(c.strip()) for c in
                           np.loadtxt(csv, delimiter=",", skiprows=1, usecols=0, dtype=str, ndmin=1)])
        values = np.loadtxt(csv, delimiter=",", skiprows=1, usecols=range(1, 64), dtype=np.float32, ndmin=2)
        keep = np.isin(labels, CLASSES)  # drops the "I Love You" sign
        rows = np.flatnonzero(keep)
        sets.append(_webcam_set(values[keep], labels[keep], [f"bisonhacks-{person}"] * len(rows),
                                [f"{csv.name}:{r + 2}" for r in rows], **conv))
    if not sets:
        raise FileNotFoundError(f"{path}: no asl_landmarks_person*.csv files")
    return LandmarkSet.concat(sets)


def load_all(names=SOURCES, config: dict | None = None) -> LandmarkSet:
    config = config or load_config()
    return LandmarkSet.concat([load_dataset(n, config) for n in names])


if __name__ == "__main__":  # build the photo caches: python -m ml.datasets
    cfg = load_config()
    for source in SOURCES:
        s = load_dataset(source, cfg)
        groups = {g: int((s.group == g).sum()) for g in np.unique(s.group)}
        print(source, len(s), groups, file=sys.stderr)
