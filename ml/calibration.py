"""The calibration protocol behind `python -m ml.experiments calibrate` (issue 9): personal models for signers the
shared model never saw.

Per signer: a model trained on every other signer (a leave-one-signer-out fold), calibrated with ml.personal.adapt
exactly as the server calls it (one thread, its default hold-out) on the first `size` frames per class of one
part of the signer's data, and tested before and after on another part, never on frames it calibrated with:
- kaggle: file order (the photos' numbers), first half calibrates, second half tests;
- ayuraj hand1/hand2: camera views, bot and dif calibrate, left, right and top test (10 photos a class at most);
- asl_ai, bisonhacks, signademy: recording order per class (contiguous frame blocks, clip halves), first half
  calibrates, second half tests.
Every test frame is read held still (the photos' case, and the one every source shares). The video sources are
also read as the live window reads them: each test frame with the frames recorded before it (`video_before`,
`video_after`), so J, Z and a hand that moves while it holds a letter are seen as they were signed.
"""
from __future__ import annotations

import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ml.augment import held_windows
from ml.checkpoint import load_checkpoint
from ml.landmark_set import LandmarkSet
from ml.model import CLASSES
from ml.personal import CALIBRATION_CLASSES, Samples, adapt, make_replay, take_windows
from ml.train import load_sets, parse_args, run

CALIBRATION_SIZES = (1, 5, 20)  # frames per class: one photo, five, the page's ~1.5 s at 15 fps
AYURAJ_CALIBRATION_VIEWS = ("bot", "dif")
_NUMBER = re.compile(r"(\d+)\D*$")
_AYURAJ_VIEW = re.compile(r"_(bot|dif|left|right|top)_seg_(\d+)")


def recording_order(data: LandmarkSet, signer: str) -> np.ndarray:
    """A sort key per sample: the order the signer recorded them in (photo numbers, views, frames)."""
    if signer == "kaggle":
        return np.array([int(_NUMBER.search(Path(p).stem).group(1)) for p in data.path])
    if signer.startswith("ayuraj"):
        views = ("bot", "dif", "left", "right", "top")
        return np.array([views.index(m.group(1)) * 100 + int(m.group(2))
                         for m in (_AYURAJ_VIEW.search(p) for p in data.path)])
    return np.arange(len(data))  # the loaders keep recording order (asl_ai sorted by frame per letter)


def calibration_parts(data: LandmarkSet, signer: str) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """({class: indices of its calibration part, in recording order}, boolean test mask) for one signer's data."""
    order = recording_order(data, signer)
    pool, test = {}, np.zeros(len(data), bool)
    for cls in CALIBRATION_CLASSES:
        idx = np.flatnonzero(data.y == cls)
        if not len(idx):
            continue
        idx = idx[np.argsort(order[idx], kind="stable")]
        if signer.startswith("ayuraj"):
            first = np.array([_AYURAJ_VIEW.search(data.path[i]).group(1) in AYURAJ_CALIBRATION_VIEWS for i in idx])
        else:
            first = np.arange(len(idx)) < len(idx) // 2
        pool[cls], test[idx[~first]] = idx[first], True
    return pool, test


PHOTO_SIGNERS = ("kaggle", "ayuraj")


def first(available: int, size: int) -> int:
    """Where a class's calibration frames start in its part: its beginning, or with CALIBRATE_FRAMES=middle its
    middle (a recording's first frames can be the hand still arriving from the previous letter)."""
    return max(0, available // 2 - size // 2) if os.environ.get("CALIBRATE_FRAMES") == "middle" else 0


def calibration_indices(pool: dict[str, np.ndarray], size: int) -> tuple[np.ndarray, np.ndarray]:
    """(indices, the class's number for each): the first `size` frames of each class's calibration part."""
    chosen = [(k, i) for k, cls in enumerate(pool) for i in pool[cls][first(len(pool[cls]), size):][:size]]
    return np.array([i for _, i in chosen]), np.array([k for k, _ in chosen])


def calibration_samples(data: LandmarkSet, pool: dict[str, np.ndarray], size: int, photos: bool) -> Samples:
    """The first `size` frames of each class's calibration part, one take per class as the page records; photos
    are a take each (consecutive photos are not a video: their wrist jumps are no motion)."""
    idx, k = calibration_indices(pool, size)
    takes = np.arange(len(idx)) if photos else k
    return Samples(data.X[idx], data.aspect[idx], data.handedness[idx] == "Right", data.y[idx], takes)


def accuracy(model: torch.nn.Module, window: int, features: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per-sample correctness (held windows)."""
    return correct(model, held_windows(features, window), labels)


def correct(model: torch.nn.Module, windows: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per-window correctness."""
    model.eval()
    with torch.inference_mode():
        pred = model(torch.as_tensor(windows)).argmax(-1).numpy()
    return pred == labels


def changes(labels: np.ndarray, before: np.ndarray, after: np.ndarray) -> dict[str, tuple[float, float]]:
    """{class: (accuracy before, after)} over the classes present in `labels`."""
    return {CLASSES[c]: (float(before[labels == c].mean()), float(after[labels == c].mean()))
            for c in np.unique(labels)}


def worst(changed: dict[str, tuple[float, float]]) -> tuple[str, float]:
    """The class that lost most (or gained least) in `changes`, and by how much."""
    c = min(changed, key=lambda k: changed[k][1] - changed[k][0])
    return c, round(changed[c][1] - changed[c][0], 4)


def fold_model(signer: str, train_options: list[str], folds_dir: str | None):
    """The model trained without `signer`: DIR/<signer>/best_model.pth when kept there, else trained now."""
    out = Path(folds_dir) / signer if folds_dir else None
    if out is None or not (out / "best_model.pth").is_file():
        import tempfile
        tmp = tempfile.TemporaryDirectory() if out is None else None
        target = Path(tmp.name) if tmp else out
        run(parse_args([*train_options, "--test-groups", signer, "--out", str(target)]), emit=lambda line: None)
        model, meta = load_checkpoint(target / "best_model.pth", "cpu")
        if tmp:
            tmp.cleanup()
        return model, meta
    return load_checkpoint(out / "best_model.pth", "cpu")


@dataclass
class Fold:
    """One unseen signer: the model trained without them, the replay set it adapts with, their data split into
    the calibration part (`pool`: {class: indices in recording order}) and the test part."""
    signer: str
    model: torch.nn.Module
    meta: dict
    replay: tuple[np.ndarray, np.ndarray]
    person: LandmarkSet
    pool: dict[str, np.ndarray]
    x_test: np.ndarray
    y_test: np.ndarray
    video: np.ndarray | None  # a video source's test frames in recording order, through the live window

    @property
    def photos(self) -> bool:
        return self.signer.startswith(PHOTO_SIGNERS)

    def read(self, model: torch.nn.Module) -> tuple[np.ndarray, np.ndarray | None]:
        """Per test frame: read right held still, and (video sources) read right through the live window."""
        still = accuracy(model, self.meta["window"], self.x_test, self.y_test)
        return still, None if self.video is None else correct(model, self.video, self.y_test)


def folds(signers: list[str], train_options: list[str], folds_dir: str | None, seed: int = 0):
    """Each signer's Fold (every source loaded once)."""
    args = parse_args([*train_options, "--out", "unused"])
    from ml.config import load_config
    data = load_sets(args.datasets, load_config())
    features = data.features()
    labels = np.array([CLASSES.index(c) for c in data.y])
    for signer in signers:
        mine = data.group == signer
        if not mine.any():
            raise ValueError(f"no samples of signer {signer!r}")
        model, meta = fold_model(signer, train_options, folds_dir)
        replay = make_replay(features[~mine], labels[~mine], data.group[~mine], seed=seed)
        replay = (replay["replay_features"].float().numpy(), replay["replay_labels"].long().numpy())
        person = data.subset(mine)
        pool, test = calibration_parts(person, signer)
        x_test, y_test = features[mine][test], labels[mine][test]
        # A video source's test part, each class's frames in recording order, read through the live window.
        video = None if signer.startswith(PHOTO_SIGNERS) else take_windows(x_test, y_test, meta["window"])
        yield Fold(signer, model, meta, replay, person, pool, x_test, y_test, video)


def adapt_as_served(fold: Fold, samples: Samples, seed: int = 0, options: dict | None = None):
    """ml.personal.adapt on one torch thread, as the server runs it: (result, wall seconds, CPU seconds: on a
    busy shared machine the wall time includes waiting for a core)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        started, cpu = time.monotonic(), time.thread_time()
        result = adapt(fold.model, fold.meta, samples, replay=fold.replay, **{"seed": seed, **(options or {})})
        return result, time.monotonic() - started, time.thread_time() - cpu
    finally:
        torch.set_num_threads(threads)


def run_calibration(signers: list[str], train_options: list[str], folds_dir: str | None, emit,
                    sizes=CALIBRATION_SIZES, seed: int = 0, adapt_options: dict | None = None) -> list[dict]:
    """adapt_options: keyword arguments for ml.personal.adapt (recipe variants)."""
    rows = []
    for fold in folds(signers, train_options, folds_dir, seed):
        signer, y_test = fold.signer, fold.y_test
        # CALIBRATE_SKIP=1: the user skips every other class; the table then shows what the skipped ones keep.
        skipped = [c for c in fold.pool
                   if os.environ.get("CALIBRATE_SKIP") == "1" and CALIBRATION_CLASSES.index(c) % 2]
        pool = {c: v for c, v in fold.pool.items() if c not in skipped}
        was_skipped = np.isin(y_test, [CLASSES.index(c) for c in skipped])
        shared_ok, shared_video_ok = fold.read(fold.model)
        for size in sizes:
            samples = calibration_samples(fold.person, pool, size, fold.photos)
            result, seconds, _ = adapt_as_served(fold, samples, seed, adapt_options)
            ok, video_ok = fold.read(result.model)
            per_class = changes(y_test, shared_ok, ok)
            worst_class, worst_change = worst(per_class)
            row = {"signer": signer, "options": adapt_options or {}, "per_class_frames": size, "samples": len(samples),
                   "test": int(len(y_test)),
                   "classes": len(pool), "before": round(float(shared_ok.mean()), 4),
                   "after": round(float(ok.mean()), 4), "seconds": round(seconds, 2), "steps": result.steps,
                   "page_before": round(result.before, 4), "page_after": round(result.after, 4),
                   "kept_shared": result.kept_shared, "confused": result.confused, "worst_class": worst_class,
                   "worst_class_change": worst_change,
                   "per_class": {c: [round(b, 3), round(a, 3)] for c, (b, a) in per_class.items()}}
            if video_ok is not None:
                video_worst, video_change = worst(changes(y_test, shared_video_ok, video_ok))
                row |= {"video_before": round(float(shared_video_ok.mean()), 4),
                        "video_after": round(float(video_ok.mean()), 4), "video_worst_class": video_worst,
                        "video_worst_class_change": video_change}
            if skipped:
                row["skipped"] = {"classes": skipped, "before": round(float(shared_ok[was_skipped].mean()), 4),
                                  "after": round(float(ok[was_skipped].mean()), 4),
                                  "calibrated_after": round(float(ok[~was_skipped].mean()), 4)}
            rows.append(row)
            emit(row)
    print(table(rows, sizes), file=sys.stderr)
    print(video_table(rows, sizes), file=sys.stderr)
    for size in sizes:
        chosen = [r for r in rows if r["per_class_frames"] == size]
        emit({"summary": f"{size} per class", "signers": len(chosen),
              "before": round(float(np.mean([r["before"] for r in chosen])), 4),
              "after": round(float(np.mean([r["after"] for r in chosen])), 4),
              "worst_after": min((r["after"], r["signer"]) for r in chosen),
              "seconds_max": max(r["seconds"] for r in chosen)})
    return rows


def table(rows: list[dict], sizes=CALIBRATION_SIZES) -> str:
    """The docs' markdown table: per signer, before and after for each calibration size, adaptation seconds."""
    by = {(r["signer"], r["per_class_frames"]): r for r in rows}
    signers = list(dict.fromkeys(r["signer"] for r in rows))
    lines = ["| signer | before | " + " | ".join(f"after, {s} per class" for s in sizes) + " | seconds |",
             "| --- | --- | " + " | ".join("---" for _ in sizes) + " | --- |"]
    for s in signers:
        got = [by.get((s, k)) for k in sizes]
        first = next(r for r in got if r)
        lines.append(f"| {s} | {first['before']:.1%} | " + " | ".join(f"{r['after']:.1%}" if r else "" for r in got)
                     + " | " + " / ".join(f"{r['seconds']:.1f}" for r in got if r) + " |")
    means = [[by[(s, k)]["after"] for s in signers if (s, k) in by] for k in sizes]
    before = [by[(s, k)]["before"] for s in signers for k in sizes[:1] if (s, k) in by]
    lines.append(f"| mean | {np.mean(before):.1%} | " + " | ".join(f"{np.mean(m):.1%}" if m else "" for m in means)
                 + " | |")
    return "\n".join(lines)


def video_table(rows: list[dict], sizes=CALIBRATION_SIZES) -> str:
    """The video sources' test frames read through the live window: per signer, before and after for each size,
    and the class that lost most at the largest size."""
    by = {(r["signer"], r["per_class_frames"]): r for r in rows if "video_after" in r}
    signers = list(dict.fromkeys(s for s, _ in by))
    lines = ["| signer (video windows) | before | " + " | ".join(f"after, {s} per class" for s in sizes)
             + f" | worst class ({sizes[-1]}) |", "| --- | --- | " + " | ".join("---" for _ in sizes) + " | --- |"]
    for s in signers:
        got = [by.get((s, k)) for k in sizes]
        first, last = next(r for r in got if r), got[-1]
        worst = f"{last['video_worst_class']} {last['video_worst_class_change'] * 100:+.0f}" if last else ""
        lines.append(f"| {s} | {first['video_before']:.1%} | "
                     + " | ".join(f"{r['video_after']:.1%}" if r else "" for r in got) + f" | {worst} |")
    return "\n".join(lines)
