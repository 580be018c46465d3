"""Personal models: the shared model adapted to one user's own recorded hand (issue 9).

The page records ~1.5 s of frames per signable class (`Samples`: landmarks only, never images); `adapt` fine-tunes
a copy of the shared model on them, with windows of the shared training data replayed in every batch so that the
classes the user skipped keep the shared model's knowledge. Before and after are measured on a
held-out tail of each class's frames (the last takes, or the last frames of a single take: never random frames,
which would sit beside their training neighbours). A later adaptation (the user already has a personal model,
`current`) is first compared with that model, on the held-out frames gathered since it was made (`fresh`: neither
model trained on them); when it reads them worse, the current model is kept (`kept`). A personal model (new or
kept) that reads the held-out frames worse than the shared one is not handed out: the shared weights are
returned instead. A
class whose held-out frames the kept model reads as one other class is named (`confused`: the user's two signs
look alike to it). The recipe's measurements are in
docs/EXPERIMENTS.md (`python -m ml.experiments calibrate`).

    samples = Samples(landmarks, aspect, is_left, labels, takes)   # Samples.save / Samples.load: .npz
    result = adapt(model, meta, samples, progress=report)           # PersonalError: a message for the user
    result.save(path)                                               # ml.checkpoint.load_checkpoint(path) reads it
"""
from __future__ import annotations

import copy
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn
from torch.optim.adam import adam as adam_update

from ml.augment import AugmentConfig, training_windows
from ml.checkpoint import save_checkpoint
from ml.features import FEATURE_VERSION, N_FEATURES, N_SHAPE, hand_features, still_features
from ml.landmark_set import save_npz
from ml.model import SignGRU

CALIBRATION_CLASSES = [*"ABCDEFGHIJKLMNOPQRSTUVWXYZ", "space", "del"]
MIN_SAMPLES = 5          # frames in all, below which there is nothing to learn from
REPLAY_PER_CLASS = 40    # shared-data samples per class stored with the shipped checkpoint
# The user's frames get the shared training's augmentation: 20 frames of one take are nearly one pose, and the
# user's later signing varies like a stranger's (measured: better than a gentler one, docs/EXPERIMENTS.md).
# Their wrist path comes from their takes (take_windows), so none is drawn for them.
USER_AUGMENT = AugmentConfig(wander=0.0, motion=0.0)
REPLAY_AUGMENT = AugmentConfig(transition=0.1)


class PersonalError(ValueError):
    """Calibration samples that cannot make a personal model (too few, unknown classes, bad shapes)."""


@dataclass
class Samples:
    """What calibration records, landmarks only."""
    landmarks: np.ndarray  # (N, 21, 3) float32, MediaPipe's normalised image coordinates
    aspect: np.ndarray     # (N,) float32 width / height of the frame
    is_left: np.ndarray    # (N,) bool, Hand.is_left
    labels: np.ndarray     # (N,) str, one of CALIBRATION_CLASSES
    takes: np.ndarray      # (N,) int, one number per recorded take (consecutive frames)

    def __post_init__(self):
        self.landmarks = np.asarray(self.landmarks, dtype=np.float32)
        if self.landmarks.ndim != 3 or self.landmarks.shape[1:] != (21, 3):
            raise PersonalError(f"landmarks must be (N, 21, 3), got {self.landmarks.shape}")
        n = len(self.landmarks)
        self.aspect = np.asarray(self.aspect, dtype=np.float32).reshape(-1)
        self.is_left = np.asarray(self.is_left, dtype=bool).reshape(-1)
        self.labels = np.asarray(self.labels, dtype=str).reshape(-1)
        self.takes = np.asarray(self.takes, dtype=np.int64).reshape(-1)
        if any(len(a) != n for a in (self.aspect, self.is_left, self.labels, self.takes)):
            raise PersonalError("landmarks, aspect, is_left, labels and takes must have one entry per frame")
        if not np.isfinite(self.landmarks).all() or not (np.isfinite(self.aspect) & (self.aspect > 0)).all():
            raise PersonalError("landmarks and aspect must be finite (aspect > 0)")
        unknown = sorted(set(self.labels) - set(CALIBRATION_CLASSES))
        if unknown:
            raise PersonalError(f"unknown classes {unknown}: calibration takes {', '.join(CALIBRATION_CLASSES)}")

    def __len__(self) -> int:
        return len(self.landmarks)

    def features(self) -> np.ndarray:
        return hand_features(self.landmarks, self.aspect, self.is_left)

    def subset(self, mask) -> "Samples":
        return Samples(self.landmarks[mask], self.aspect[mask], self.is_left[mask], self.labels[mask], self.takes[mask])

    @staticmethod
    def concat(parts: list["Samples"]) -> "Samples":
        """One user's samples gathered at different times (calibration, then practice words), in that order."""
        return Samples(*(np.concatenate([getattr(s, f) for s in parts])
                         for f in ("landmarks", "aspect", "is_left", "labels", "takes")))

    def latest(self, per_class: int) -> "Samples":
        """The last `per_class` frames of each class (frames are kept in the order they were gathered): a class
        that has gathered more keeps its newest."""
        return self.subset(self.newest(per_class))

    def newest(self, per_class: int) -> np.ndarray:
        """Boolean mask of the frames `latest` keeps (their order unchanged)."""
        keep = np.zeros(len(self), bool)
        for cls in np.unique(self.labels):
            keep[np.flatnonzero(self.labels == cls)[-per_class:]] = True
        return keep

    def save(self, path: str | os.PathLike) -> Path:
        """Atomic .npz write (temp file + rename)."""
        return save_npz(path, landmarks=self.landmarks, aspect=self.aspect, is_left=self.is_left, labels=self.labels,
                        takes=self.takes)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Samples":
        try:
            with np.load(path, allow_pickle=False) as data:
                return cls(data["landmarks"], data["aspect"], data["is_left"], data["labels"], data["takes"])
        except (OSError, KeyError, ValueError) as exc:
            if isinstance(exc, PersonalError):
                raise
            raise PersonalError(f"{path}: not calibration samples ({exc})") from None


@dataclass
class AdaptResult:
    model: nn.Module
    meta: dict
    before: float   # shared model's accuracy on the held-out frames
    after: float    # personal model's accuracy on them
    seconds: float
    samples: int
    classes: list[str]
    held_out: int = 0                 # frames the two accuracies are measured on (0: measured on the training frames)
    per_class: dict = field(default_factory=dict)  # class -> (before, after) on the held-out frames
    kept_shared: bool = False         # the personal model was no better, so the shared weights were kept
    kept: str = "new"                 # the model returned: "new", "shared" (kept_shared) or "current"
    compared: dict | None = None      # with a current model: {"current", "new": accuracies, "frames"} on fresh frames
    confused: dict = field(default_factory=dict)  # class -> the class most of its held-out frames read as
    steps: int = 0                    # training steps done (fewer than asked when max_seconds ended it)

    def save(self, path: str | os.PathLike) -> Path:
        """The personal model as a checkpoint (atomic); ml.checkpoint.load_checkpoint reads it back."""
        return save_checkpoint(path, self.model, classes=self.meta["classes"], window=self.meta["window"],
                               personal=self.meta["personal"])


def confusions(labels: np.ndarray, pred: np.ndarray, classes: list[str]) -> dict[str, str]:
    """{class: other} for each class whose frames (class indices `labels`) are read (`pred`) as one other class
    more than half the time: the user's two signs cannot be told apart, so reading with the model would mix them."""
    out = {}
    for c in np.unique(labels):
        wrong = pred[(labels == c) & (pred != c)]
        if len(wrong):
            other = np.bincount(wrong).argmax()
            if (wrong == other).sum() * 2 > (labels == c).sum():
                out[classes[c]] = classes[other]
    return out


def split_holdout(samples: Samples, holdout: float) -> np.ndarray:
    """Boolean mask of held-out frames: per class, its last takes (when it has several) or the last frames of its
    one take, about `holdout` of its frames; a class with fewer than 4 frames keeps them all for training."""
    held = np.zeros(len(samples), bool)
    if holdout <= 0:
        return held
    for cls in np.unique(samples.labels):
        idx = np.flatnonzero(samples.labels == cls)
        if len(idx) < 4:
            continue
        takes = list(dict.fromkeys(samples.takes[idx]))  # recording order
        if len(takes) > 1:
            n_takes = max(1, int(round(holdout * len(takes))))
            held[idx[np.isin(samples.takes[idx], takes[-n_takes:])]] = True
        else:
            held[idx[-max(1, int(round(holdout * len(idx)))):]] = True
    return held


def replay_set(meta: dict) -> tuple[np.ndarray, np.ndarray] | None:
    """(features (M, 67), class indices (M,)) of shared training samples stored with the checkpoint, if any."""
    if "replay_features" not in meta:
        return None
    return (still_features(np.asarray(meta["replay_features"], dtype=np.float32)),
            np.asarray(meta["replay_labels"], dtype=np.int64))


def make_replay(features: np.ndarray, labels: np.ndarray, groups: np.ndarray, per_class: int = REPLAY_PER_CLASS,
                seed: int = 0) -> dict:
    """A small replay set from shared training data: per class, `per_class` samples drawn evenly over its
    signers. The checkpoint stores it (save_checkpoint(..., **make_replay(...)))."""
    rng = np.random.default_rng(seed)
    chosen = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        by_group = [rng.permutation(idx[groups[idx] == g]) for g in np.unique(groups[idx])]
        picked = [g[k] for k in range(max(map(len, by_group))) for g in by_group if k < len(g)][:per_class]
        chosen.extend(picked)
    chosen = np.array(sorted(chosen))
    return {"replay_features": torch.as_tensor(features[chosen, :N_SHAPE], dtype=torch.float16),
            "replay_labels": torch.as_tensor(labels[chosen], dtype=torch.int16)}


def take_windows(features: np.ndarray, takes: np.ndarray, window: int) -> np.ndarray:
    """(N, F) frames in recording order -> (N, T, F): each frame with the frames of its take before it (a take's
    first frames are padded with its first frame, as the live window is). A window never crosses into another
    take, so a recorded J or Z brings its own wrist path."""
    n = len(features)
    run_start = np.zeros(n, np.int64)  # where each frame's run of one take begins
    for i in range(1, n):
        run_start[i] = run_start[i - 1] if takes[i] == takes[i - 1] else i
    idx = np.arange(n)[:, None] - np.arange(window - 1, -1, -1)[None, :]
    return features[np.maximum(idx, run_start[:, None])]


def with_motion(model: nn.Module) -> nn.Module:
    """A copy of `model` that also reads the wrist's path. A shape-only model gets the three path inputs with zero
    weights, so it answers exactly as before until calibration teaches it a user's J and Z."""
    model = copy.deepcopy(model).cpu()
    if not isinstance(model, SignGRU) or model.motion:
        return model
    moving = SignGRU(**{**model.config, "n_features": N_FEATURES, "motion": True})
    state = model.state_dict()
    weight = state["gru.weight_ih_l0"]
    state["gru.weight_ih_l0"] = torch.cat([weight, torch.zeros(weight.shape[0], 3, dtype=weight.dtype)], dim=1)
    moving.load_state_dict(state)
    return moving.train(model.training)


def _accuracy(model: nn.Module, windows: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
    model.eval()
    with torch.inference_mode():
        pred = model(torch.as_tensor(windows)).argmax(-1).numpy()
    return float((pred == labels).mean()), pred


class AdamW:
    """torch.optim.AdamW's update, computed by torch's own functional `adam` (decoupled weight decay), without
    torch.optim's Optimizer class: its first step imports torch._dynamo, 2.2 s of CPU that every adaptation paid
    out of its max_seconds, while the user waited (docs/PERFORMANCE.md). tests/test_personal.py checks it step for
    step against torch.optim.AdamW."""

    def __init__(self, params, lr: float, weight_decay: float = 1e-2, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8):
        self.params = [p for p in params if p.requires_grad]
        self.lr, self.weight_decay, self.betas, self.eps = lr, weight_decay, betas, eps
        self.exp_avgs = [torch.zeros_like(p, memory_format=torch.preserve_format) for p in self.params]
        self.exp_avg_sqs = [torch.zeros_like(p, memory_format=torch.preserve_format) for p in self.params]
        self.steps = [torch.tensor(0.0) for _ in self.params]

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        live = [i for i, p in enumerate(self.params) if p.grad is not None]  # as torch's: a parameter without a
        pick = lambda items: [items[i] for i in live]  # noqa: E731   gradient keeps its state and its value
        adam_update(pick(self.params), [self.params[i].grad for i in live], pick(self.exp_avgs),
                    pick(self.exp_avg_sqs), [], pick(self.steps), decoupled_weight_decay=True, amsgrad=False,
                    beta1=self.betas[0], beta2=self.betas[1], lr=self.lr, weight_decay=self.weight_decay,
                    eps=self.eps, maximize=False)


def adapt(model: nn.Module, meta: dict, samples: Samples, *, progress: Callable[[int, int], None] | None = None,
          seed: int = 0, holdout: float = 0.25, steps: int = 200, lr: float = 3e-3, batch: int = 64,
          replay: tuple[np.ndarray, np.ndarray] | None = None, replay_batch: int = 64,
          min_samples: int = MIN_SAMPLES, head_only: bool = False, user_augment: AugmentConfig | dict | None = None,
          motion: bool = True, max_seconds: float | None = 12.0, balance: bool = False,
          current: nn.Module | None = None, fresh: np.ndarray | None = None) -> AdaptResult:
    """A personal model from the shared `model` (never changed) and one user's `samples`.

    Every step trains on `batch` augmented windows of the user's frames and `replay_batch` of the shared
    replay set (`replay`, else the one stored in `meta`); head_only leaves the GRU as shared; motion makes a
    shape-only (version 1) model see the wrist's path first (with_motion). The learning rate decays by the larger
    of the steps done and the time spent (max_seconds of training): on a busy machine adaptation ends on time, with
    fewer steps. balance draws every class's frames equally often (else every frame is: a letter that practice
    words bring often weighs more). `current`: the user's personal model so far, kept (and returned) when the new
    one reads worse the held-out frames among `fresh` (mask: frames gathered since `current` was made; default
    all), the ones neither model trained on. PersonalError for too few samples."""
    started = time.monotonic()
    if len(samples) < min_samples:
        raise PersonalError(f"{len(samples)} calibration frames: at least {min_samples} are needed")
    classes = list(meta["classes"])
    missing = sorted(set(samples.labels) - set(classes))
    if missing:
        raise PersonalError(f"classes {missing} are not among the model's classes")
    window = int(meta["window"])
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    features = samples.features()
    labels = np.array([classes.index(c) for c in samples.labels], dtype=np.int64)
    if fresh is not None and len(fresh) != len(samples):
        raise PersonalError(f"fresh has {len(fresh)} entries for {len(samples)} frames")
    held = split_holdout(samples, holdout)
    train = ~held
    test = held if held.any() else train
    # A held-out tail is a take of its own, so that no test window reaches back into training frames.
    windows = take_windows(features, samples.takes * 2 + held, window)
    test_windows = windows[test]

    personal = with_motion(model) if motion else copy.deepcopy(model).cpu()
    if isinstance(user_augment, dict):
        user_augment = AugmentConfig(**user_augment)
    user_augment = user_augment or USER_AUGMENT
    replay = replay if replay is not None else replay_set(meta)
    trained = personal.head.parameters() if head_only else personal.parameters()
    optimizer = AdamW(trained, lr=lr, weight_decay=1e-4)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.05)
    x_user, y_user, motion_user = features[train], labels[train], windows[train][..., N_SHAPE:]
    weights = None
    if balance:
        weights = 1.0 / np.bincount(y_user)[y_user]
        weights /= weights.sum()
    trained_from, steps_done = time.monotonic(), 0
    for step in range(steps):
        done = step / steps
        if max_seconds:
            done = max(done, (time.monotonic() - trained_from) / max_seconds)
        if done >= 1:
            break
        personal.train()
        pick = rng.choice(len(x_user), batch, p=weights) if balance else rng.integers(0, len(x_user), batch)
        user = training_windows(x_user[pick], y_user[pick], window, rng, user_augment)
        user[..., N_SHAPE:] = motion_user[pick]  # the user's own wrist path over the window
        xs, ys = [user], [y_user[pick]]
        if replay is not None and replay_batch > 0:
            rpick = rng.integers(0, len(replay[0]), replay_batch)
            xs.append(training_windows(replay[0][rpick], replay[1][rpick], window, rng, REPLAY_AUGMENT))
            ys.append(replay[1][rpick])
        x = torch.as_tensor(np.concatenate(xs))
        y = torch.as_tensor(np.concatenate(ys))
        optimizer.lr = lr * 0.5 * (1 + math.cos(math.pi * done))  # cosine decay: the last steps settle
        loss = loss_fn(personal(x), y)
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(personal.parameters(), 1.0)
        optimizer.step()
        steps_done = step + 1
        if progress is not None and step + 1 < steps:
            progress(step + 1, steps)
    if progress is not None:
        progress(steps, steps)  # also when time ended it early

    shared_cpu = copy.deepcopy(model).cpu()
    before, pred_before = _accuracy(shared_cpu, test_windows, labels[test])
    after, pred_after = _accuracy(personal, test_windows, labels[test])
    kept, compared = "new", None
    if current is not None:
        fair = held & (np.ones(len(samples), bool) if fresh is None else np.asarray(fresh, bool))
        if fair.any():  # else nothing tells them apart fairly: the new one, trained on more, stays
            current = copy.deepcopy(current).cpu()
            was, _ = _accuracy(current, windows[fair], labels[fair])
            now, _ = _accuracy(personal, windows[fair], labels[fair])
            compared = {"current": was, "new": now, "frames": int(fair.sum())}
            if now < was:
                kept = "current"
                personal = current
                after, pred_after = _accuracy(personal, test_windows, labels[test])
    if after < before:  # whichever personal model it is: never one that reads worse than the shared model
        kept = "shared"
        personal, after, pred_after = shared_cpu, before, pred_before
    personal.eval()
    per_class = {}
    for c in np.unique(labels[test]):
        m = labels[test] == c
        per_class[classes[c]] = (float((pred_before[m] == c).mean()), float((pred_after[m] == c).mean()))
    out_meta = {k: v for k, v in meta.items() if not k.startswith("replay_")}
    out_meta["feature_version"] = FEATURE_VERSION if getattr(personal, "motion", False) else meta["feature_version"]
    out_meta["personal"] = {"samples": len(samples),  # plain Python values: checkpoints load weights_only
                            "classes": sorted(map(str, set(samples.labels))), "before": before,
                            "after": after, "steps": steps_done, "seed": seed}
    return AdaptResult(model=personal, meta=out_meta, before=before, after=after,
                       seconds=time.monotonic() - started, samples=len(samples),
                       classes=[c for c in CALIBRATION_CLASSES if c in set(samples.labels)],
                       held_out=int(held.sum()), per_class=per_class, kept_shared=kept == "shared", kept=kept,
                       compared=compared, steps=steps_done, confused=confusions(labels[test], pred_after, classes))


def main(argv=None) -> None:
    """The server's adaptation subprocess (app.live.personal): --samples (.npz) + the shared --checkpoint -> --out.
    With --current (the user's personal model so far, a file this consumes) and --fresh N (the samples' last N
    frames came after it), the new model must read the held-back fresh frames at least as well, else --out is the
    current model's file, byte for byte (the new samples are kept all the same: a later adaptation learns from
    them). JSON lines on stdout: {"step", "steps"} as it goes, then {"done": {...}} or {"error": {"code",
    "message"}}. It imports torch and ml only: every adaptation pays its interpreter's start."""
    import argparse
    import json
    import sys

    from ml.checkpoint import CheckpointError, load_checkpoint

    parser = argparse.ArgumentParser(description="adapt the shared model to one user's samples")
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--samples", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--steps", type=int)
    parser.add_argument("--current", type=Path, help="the user's personal model so far (removed when done)")
    parser.add_argument("--fresh", type=int, default=0, help="the samples' last N frames came after --current")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # the server's cores are for live frames first

    def say(event: dict) -> None:
        print(json.dumps(event), flush=True)

    def progress(step: int, steps: int) -> None:
        if step == steps or step % max(1, steps // 20) == 0:
            say({"step": step, "steps": steps})

    try:
        samples = Samples.load(args.samples)
        model, meta = load_checkpoint(args.checkpoint)
        guard = {}
        if args.current:
            try:
                current, _ = load_checkpoint(args.current)
                fresh = np.arange(len(samples)) >= len(samples) - args.fresh
                guard = {"current": current, "fresh": fresh}
            except CheckpointError as exc:  # unreadable: nothing to compare with, as for a first adaptation
                print(f"the current personal model is not compared: {exc}", file=sys.stderr)
        result = adapt(model, meta, samples, progress=progress, **guard,
                       **({"steps": args.steps} if args.steps else {}))
        if result.kept == "current":
            os.replace(args.current, args.out)
        else:
            result.save(args.out)
    except PersonalError as exc:
        say({"error": {"code": "too_few_samples", "message": f"not enough calibration to adapt: {exc}"}})
        return
    finally:
        if args.current:
            args.current.unlink(missing_ok=True)  # never part of the stored entry
    compared = result.compared and {k: round(v, 4) if k != "frames" else v for k, v in result.compared.items()}
    say({"done": {"before": round(result.before, 4), "after": round(result.after, 4), "samples": result.samples,
                  "classes": result.classes, "seconds": round(result.seconds, 2), "confused": result.confused,
                  "kept": result.kept, "compared": compared}})


if __name__ == "__main__":
    main()
