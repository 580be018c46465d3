"""Letters lost and inserted: how a signer's hand is shown to the speller in bench.words, and how its spelling is
scored letter by letter (docs/EXPERIMENTS.md, "A held letter is never lost").

A word is shown as a hand would sign it at the page's 15 fps: each letter a held sample of the held-out signer
(its feature vector) for `pace` frames, shaking as a real held hand shakes, and between two letters the hand
moving from one to the next. The shake is real: runs of consecutive held frames of the signademy letter clips
(15 fps, J and Z left out: they move), each frame's deviation from the mean of the 5 frames around it (a hand
still settling or being lowered moves; the rest is shake), added to the sample (the wrist's in proportion to the
palm). The move is the straight line from one held hand to the next in feature space
(shape, wrist and palm), TRANSITION frames of it: a plain model of a moving hand, not a recorded one. A double
letter rests (no hand) between its two, as the page tells the user. Insertions on real motion are measured apart,
on the signademy clips read as the live page reads them (`read_clips`).
"""
from __future__ import annotations

import numpy as np

TRANSITION = (2, 5)  # frames a hand moves between two letters, drawn from [low, high) (0.13-0.27 s at 15 fps)
SHAKE_SOURCE = "signademy"
CLIP_FPS, PAGE_FPS = 30, 15
SMOOTH = 5  # frames (at 15 fps) of the centred mean a clip's shake is measured from


def shake_runs(data) -> list[np.ndarray]:
    """Per signademy clip (J and Z left out), its held frames at the page's rate as deviations from their centred
    SMOOTH-frame mean (n, 67), the wrist's and the palm's in palm widths."""
    held = data.subset((data.group == SHAKE_SOURCE) & ~np.isin(data.y, ["J", "Z"]))
    feats = held.features()
    clips = np.array([p.rsplit(":", 1)[0] for p in held.path])
    frames = np.array([int(p.rsplit(":", 1)[1]) for p in held.path])
    runs = []
    for clip in np.unique(clips):
        order = np.flatnonzero(clips == clip)[np.argsort(frames[clips == clip])][::CLIP_FPS // PAGE_FPS]
        f = feats[order]
        # The slow path (the clip's hand still settling, or being lowered at its end) is motion, not shake.
        k = np.ones(SMOOTH) / SMOOTH
        path = np.stack([np.convolve(np.pad(col, SMOOTH // 2, mode="edge"), k, "valid") for col in f.T], 1)
        dev = f - path
        dev[:, 63:66] /= f[:, 66:67]  # the wrist's shake in palm widths
        dev[:, 66] /= f[:, 66]
        runs.append(dev.astype(np.float32))
    return runs


def shaken(pose: np.ndarray, runs: list[np.ndarray], n: int, rng) -> np.ndarray:
    """`pose` held for `n` frames with a real held hand's shake (a random run, played back and forth when
    shorter than n)."""
    run = runs[rng.integers(len(runs))]
    start = rng.integers(len(run))
    cycle = np.concatenate([run, run[::-1]])
    dev = cycle[(start + np.arange(n)) % len(cycle)].copy()
    dev[:, 63:67] *= pose[66]  # palm widths -> this sample's image units
    return (pose[None, :] + dev).astype(np.float32)


def moving(a: np.ndarray, b: np.ndarray, n: int) -> np.ndarray:
    """The `n` frames of a hand moving from `a` to `b` (neither included)."""
    t = np.arange(1, n + 1, dtype=np.float32)[:, None] / (n + 1)
    return a[None, :] * (1 - t) + b[None, :] * t


def word_hands(word: str, poses: list[np.ndarray], runs: list[np.ndarray], pace: tuple[int, int], rng,
               rest_frames: int) -> list[np.ndarray | None]:
    """The hand at each frame of `word` signed with `poses` (one per letter), None where no hand is shown."""
    frames: list = []
    for i, (c, pose) in enumerate(zip(word, poses)):
        held = shaken(pose, runs, int(rng.integers(*pace)), rng)
        if i and word[i - 1] == c:  # a double letter: rest between, as the page tells the user
            frames += [None] * rest_frames
        elif i:
            frames += list(moving(frames[-1], held[0], int(rng.integers(*TRANSITION))))
        frames += list(held)
    return frames


def edits(meant: str, read: str) -> tuple[int, int, int]:
    """(letters lost, letters inserted, letters misread) of the cheapest alignment of `read` to `meant`
    (Levenshtein; a tie prefers a misread)."""
    n, m = len(meant), len(read)
    cost = [[(0, 0, 0)] * (m + 1) for _ in range(n + 1)]
    for i in range(1, n + 1):
        cost[i][0] = (i, 0, 0)
    for j in range(1, m + 1):
        cost[0][j] = (0, j, 0)
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            lost, ins, bad = cost[i - 1][j - 1]
            options = [(lost, ins, bad + (meant[i - 1] != read[j - 1]))]
            lost, ins, bad = cost[i - 1][j]
            options.append((lost + 1, ins, bad))
            lost, ins, bad = cost[i][j - 1]
            options.append((lost, ins + 1, bad))
            cost[i][j] = min(options, key=lambda c: (sum(c), c[0] + c[1]))
    return cost[n][m]


def letter_counts(spelled: list) -> dict:
    """Letters signed, lost, inserted and misread over [(word, letters, tail)]."""
    out = {"signed": 0, "lost": 0, "inserted": 0, "misread": 0, "short": 0, "unsure": 0, "committed": 0}
    for word, letters, _ in spelled:
        raw = "".join(x.label for x in letters)
        lost, inserted, misread = edits(word, raw)
        out["signed"] += len(word)
        out["lost"] += lost
        out["inserted"] += inserted
        out["misread"] += misread
        out["short"] += len(raw) < len(word)
        out["committed"] += len(letters)
        out["unsure"] += sum(getattr(x, "unsure", False) for x in letters)
    return out


def read_clips(model, meta, folder, config: dict, readers: dict) -> dict:
    """Each letter clip of `folder` (<LETTER>.mp4: the signer raises a hand, holds the letter, and lowers it) read
    as the live page reads a camera: 15 fps, 480 px wide, one tracking-mode hand, the rolling window (cleared
    when no hand shows), the model, then each speller of `readers` ({name: (make Speller, use the hand?)}).
    Returns {reader: [(clip letter, the letters committed)]}."""
    from pathlib import Path

    import cv2
    import torch

    from app.live.decoder import letter_probs
    from ml.features import hand_features
    from ml.inference import fit_window
    from ml.landmarks import HandTracker, tracker_settings
    classes, window = list(meta["classes"]), meta["window"]
    out = {name: [] for name in readers}
    for clip in sorted(Path(folder).glob("*.mp4")):
        capture = cv2.VideoCapture(str(clip))
        spellers = {name: make() for name, (make, _) in readers.items()}
        history: list = []
        with HandTracker(static=False, **tracker_settings(config["landmarks"])) as tracker:
            index = 0
            while True:
                ok, frame = capture.read()
                if not ok:
                    break
                index += 1
                if index % (CLIP_FPS // PAGE_FPS):
                    continue
                h, w = frame.shape[:2]
                frame = cv2.resize(frame, (480, round(h * 480 / w)))
                hand = tracker.process(frame)
                if hand is None:
                    history = []
                    for speller in spellers.values():
                        speller.update(None, 1.0)
                    continue
                feats = hand_features(hand.landmarks, aspect=480 / frame.shape[0], is_left=hand.is_left)
                history = (history + [feats])[-window:]
                with torch.inference_mode():
                    p = torch.softmax(model(torch.as_tensor(fit_window(np.stack(history), window)[None])).float(),
                                      -1)[0].numpy()
                best = int(p.argmax())
                for name, speller in spellers.items():
                    speller.update(classes[best], float(p[best]), letter_probs(p, classes),
                                   feats if readers[name][1] else None)
        capture.release()
        for name, speller in spellers.items():
            speller.finish_word()
            out[name].append((clip.stem.upper(), "".join(x.label for x in speller.finished)))
    return out
