"""Image folder (<CLASS>/<images>) -> landmark set (.npz), with MediaPipe in parallel worker processes.

Images where no hand is found, and files that are not decodable images, are counted and listed (in the
summary and in OUT.failures.json beside the set), never silently dropped.

    python -m ml.preprocess FOLDER --out OUT.npz [--group NAME] [--workers N]
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ml.config import load_config
from ml.landmark_set import LandmarkSet
from ml.landmarks import (HandTracker, ImageError, canonical_class, list_image_folder, read_image,
                          tracker_settings)

NO_HAND = "no hand found"


@dataclass
class Preprocessed:
    landmarks: LandmarkSet
    failures: list[dict] = field(default_factory=list)  # {"path", "class", "reason"}
    total: int = 0

    def summary(self) -> dict:
        reasons: dict[str, int] = {}
        per_class: dict[str, int] = {}
        for f in self.failures:
            key = NO_HAND if f["reason"] == NO_HAND else "unreadable"
            reasons[key] = reasons.get(key, 0) + 1
            per_class[f["class"]] = per_class.get(f["class"], 0) + 1
        return {"images": self.total, "detected": len(self.landmarks), "no_hand": reasons.get(NO_HAND, 0),
                "unreadable": reasons.get("unreadable", 0), "failures_per_class": per_class}


_tracker: HandTracker | None = None


def _init_worker(settings: dict) -> None:
    global _tracker
    import cv2
    cv2.setNumThreads(1)  # one process per core already
    _tracker = HandTracker(static=True, **settings)


def _detect(path: str):
    """(landmarks, handedness, aspect) or an error string, for one image in a worker."""
    try:
        image = read_image(path)
    except ImageError as exc:
        return str(exc)
    hand = _tracker.process(image)
    if hand is None:
        return NO_HAND
    w, h = hand.image_size
    return hand.landmarks, hand.handedness, w / h


def preprocess_folder(folder: str | os.PathLike, group: str | None = None, workers: int | None = None,
                      config: dict | None = None, progress: bool | None = None) -> Preprocessed:
    """Detect hands in every image of `folder` (<CLASS>/<images>). Raises FileNotFoundError for a missing
    folder and ValueError for a folder with no images in class sub-folders."""
    config = config or load_config()
    folder = Path(folder)
    items = list_image_folder(folder)
    if not items:
        raise ValueError(f"{folder}: no images (expected <CLASS>/<image>.jpg|.jpeg|.png)")
    group = group or folder.name
    workers = max(1, min(workers or os.cpu_count() or 1, len(items)))
    progress = sys.stderr.isatty() if progress is None else progress
    settings = tracker_settings(config["landmarks"])
    paths = [str(p) for p, _ in items]
    results = []
    if workers == 1:
        _init_worker(settings)
        iterator = map(_detect, paths)
        pool = None
    else:
        pool = mp.get_context("spawn").Pool(workers, _init_worker, (settings,))
        iterator = pool.imap(_detect, paths, chunksize=8)
    try:
        for i, result in enumerate(iterator, 1):
            results.append(result)
            if progress:
                _progress_bar(i, len(paths))
    finally:
        if pool is not None:
            pool.close()
            pool.join()
        if progress:
            print(file=sys.stderr)
    keep, failures = [], []
    for (path, cls), result in zip(items, results):
        if isinstance(result, str):
            failures.append({"path": str(path), "class": cls, "reason": result})
        else:
            keep.append((path, cls, result))
    landmarks = LandmarkSet(
        X=np.array([r[0] for _, _, r in keep], dtype=np.float32).reshape(-1, 21, 3),
        y=[c for _, c, _ in keep], group=[group] * len(keep), path=[str(p) for p, _, _ in keep],
        handedness=[r[1] for _, _, r in keep], aspect=[r[2] for _, _, r in keep])
    return Preprocessed(landmarks, failures, len(items))


VIDEO_SUFFIXES = {".mp4", ".mov", ".avi", ".webm"}
VIDEO_WIDTH = 540  # frames are scaled to this width first: landmarks are normalised, and it is 4x faster


def preprocess_videos(folder: str | os.PathLike, group: str | None = None, held_from: float = 0.5,
                      raised_below: float = 0.75, config: dict | None = None) -> Preprocessed:
    """Letter clips (<CLASS>.mp4: the signer raises a hand and holds the letter) -> a landmark set of the
    held frames: every frame from `held_from` of the clip on where a hand is up. MediaPipe tracks (video
    mode) up to two hands and keeps the raised one (wrist in the upper `raised_below` of the frame): the
    resting hand in the lap is found too, and a one-hand tracker can lock onto it. Clips without a raised
    hand are listed as failures."""
    import cv2

    config = config or load_config()
    folder = Path(folder)
    clips = sorted(p for p in folder.glob("*") if p.suffix.lower() in VIDEO_SUFFIXES)
    if not clips:
        raise ValueError(f"{folder}: no video clips (expected <CLASS>.mp4)")
    group = group or folder.name
    settings = tracker_settings(config["landmarks"])
    rows, failures = [], []
    for clip in clips:
        cls = canonical_class(clip.stem)
        capture = cv2.VideoCapture(str(clip))
        frames = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        found = 0
        with HandTracker(static=False, max_hands=2, **settings) as tracker:
            for index in range(frames):
                ok, frame = capture.read()
                if not ok:
                    break
                h, w = frame.shape[:2]
                hands = tracker.all_hands(cv2.resize(frame, (VIDEO_WIDTH, round(h * VIDEO_WIDTH / w))))
                raised = [hd for hd in hands if hd.landmarks[0, 1] < raised_below]
                # Every frame goes through the tracker, as live, so held frames are tracked, not detected afresh.
                if index < held_from * frames or not raised:
                    continue
                hand = min(raised, key=lambda hd: hd.landmarks[0, 1])
                rows.append((hand, cls, f"{clip}:{index}"))
                found += 1
        capture.release()
        if not found:
            failures.append({"path": str(clip), "class": cls, "reason": NO_HAND})
    landmarks = LandmarkSet(
        X=np.array([hd.landmarks for hd, _, _ in rows], dtype=np.float32).reshape(-1, 21, 3),
        y=[c for _, c, _ in rows], group=[group] * len(rows), path=[p for _, _, p in rows],
        handedness=[hd.handedness for hd, _, _ in rows],
        aspect=[hd.image_size[0] / hd.image_size[1] for hd, _, _ in rows])
    return Preprocessed(landmarks, failures, len(clips))


def _progress_bar(done: int, total: int, width: int = 40) -> None:
    filled = width * done // total
    print(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total}", end="", file=sys.stderr, flush=True)


def save(result: Preprocessed, out: str | os.PathLike) -> Path:
    """The set at `out` and its failures list at OUT.failures.json."""
    out = Path(out)
    result.landmarks.save(out)
    failures_path(out).write_text(json.dumps({"summary": result.summary(), "failures": result.failures}, indent=1))
    return out


def failures_path(out: str | os.PathLike) -> Path:
    out = Path(out)
    return out.with_name(out.stem + ".failures.json")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ml.preprocess", description=__doc__.split("\n")[0])
    parser.add_argument("folder", help="image folder laid out <CLASS>/<images> (class names case-insensitive)")
    parser.add_argument("--out", required=True, help="landmark set to write (.npz)")
    parser.add_argument("--group", help="signer / recording id for every sample (default: the folder's name)")
    parser.add_argument("--workers", type=int, default=None, help="worker processes (default: all cores)")
    args = parser.parse_args(argv)
    if not args.out.endswith(".npz"):
        parser.error("--out must end in .npz")
    try:
        result = preprocess_folder(args.folder, args.group, args.workers)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    save(result, args.out)
    summary = result.summary()
    print(json.dumps({"out": args.out, **summary}))
    for f in result.failures:
        print(f"  {f['reason']}: {f['path']}", file=sys.stderr)
    print(f"{summary['detected']}/{summary['images']} images with a hand; {summary['no_hand']} without, "
          f"{summary['unreadable']} unreadable (listed in {failures_path(args.out)})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
