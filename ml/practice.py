"""The practice protocol behind `python -m ml.experiments practice` (issue 22): what practice words teach a
stranger's personal model, alone and after calibration.

Per signer, ml.calibration's leave-one-signer-out fold and parts: calibration as the page records it (20 settled
frames per class of the calibration part, `calibration_samples`), then the words of ml.practice_words spelled
from the same part, never from a calibration frame (unless calibration took all that a class has there: ayuraj's
10 photos in two views): each letter a take of its own (a photo signer's take is one
photo; a video signer's a run of 8-14 consecutive frames, a letter held 0.5-1 s at 15 fps as bench.words signs
it), each word ending with a `space` take and every DEL_EVERY-th word with a `del` take and its last letter again,
where the signer has those signs (a sign the signer lacks is a letter the page missed: no take). After 10, 20 and
40 words ml.personal.adapt runs as the server runs it on everything gathered, practice alone and calibration +
practice, the latter also guarded as the server guards a later adaptation (compared with the calibration model on
held-back practice frames, the better kept); every model is tested on the other part (held still; video sources also through the live window).
`misreads` says what the frames still read wrong are like.
"""
from __future__ import annotations

import os
import sys

import numpy as np

from ml.calibration import (CALIBRATION_SIZES, Fold, adapt_as_served, calibration_indices, calibration_samples,
                            folds)
from ml.model import CLASSES
from ml.personal import Samples
from ml.practice_words import DEL_EVERY, PRACTICE_WORDS

WORDS_AFTER = (10, 20, 40)
CALIBRATION_FRAMES = CALIBRATION_SIZES[-1]  # the page's amount per class
PACE = (8, 15)  # frames a video signer's letter is held, drawn from [low, high)
FIRST_PRACTICE_TAKE = 1_000_000  # practice takes are numbered after any calibration take


def practice_signs(words=PRACTICE_WORDS, del_every: int = DEL_EVERY) -> list[list[str]]:
    """Per word, the signs the page asks for: its letters, then (every del_every-th word) `del` and its last letter
    again, then `space`."""
    out = []
    for w, word in enumerate(words):
        fix = ["del", word[-1]] if del_every and (w + 1) % del_every == 0 else []
        out.append([*word, *fix, "space"])
    return out


def practice_takes(fold: Fold, calibrated: np.ndarray, words=PRACTICE_WORDS, seed: int = 0,
                   pace: tuple[int, int] = PACE) -> tuple[Samples, np.ndarray]:
    """(samples, the word each frame came from): the practice words spelled from the signer's calibration part
    without the frames at indices `calibrated` (into fold.person), unless those are all a class has."""
    rng = np.random.default_rng(seed)
    person = fold.person
    # A class whose calibration part calibration used up (ayuraj: 10 photos, two views) repeats those photos.
    free = {c: idx[~np.isin(idx, calibrated)] if not np.isin(idx, calibrated).all() else idx
            for c, idx in fold.pool.items()}
    photo_order = {c: rng.permutation(idx) for c, idx in free.items()}  # photos used once each, then again
    used = {c: 0 for c in free}
    blocks, takes, word_of = [], [], []
    for w, signs in enumerate(practice_signs(words)):
        for sign in signs:
            idx = free.get(sign)
            if idx is None or not len(idx):
                continue
            if fold.photos:
                block = [photo_order[sign][used[sign] % len(idx)]]
                used[sign] += 1
            else:
                n = int(rng.integers(*pace))
                start = int(rng.integers(0, max(1, len(idx) - n + 1)))
                block = idx[start:start + n]
            blocks.append(block)
            takes += [FIRST_PRACTICE_TAKE + len(blocks)] * len(block)
            word_of += [w] * len(block)
    chosen = np.concatenate(blocks)
    samples = Samples(person.X[chosen], person.aspect[chosen], person.handedness[chosen] == "Right",
                      person.y[chosen], takes)
    return samples, np.array(word_of)


def settled_calibration(fold: Fold) -> tuple[Samples, np.ndarray]:
    """The page's calibration (CALIBRATION_FRAMES settled frames per class) and its frames' indices into
    fold.person."""
    previous = os.environ.get("CALIBRATE_FRAMES")
    os.environ["CALIBRATE_FRAMES"] = "middle"  # the page records the settled sign, after a countdown
    try:
        return (calibration_samples(fold.person, fold.pool, CALIBRATION_FRAMES, fold.photos),
                calibration_indices(fold.pool, CALIBRATION_FRAMES)[0])
    finally:
        if previous is None:
            os.environ.pop("CALIBRATE_FRAMES")
        else:
            os.environ["CALIBRATE_FRAMES"] = previous


def misreads(fold: Fold, model, samples: Samples) -> dict:
    """What the test frames a personal model still misreads are like, against the frames it adapted on:
    - `pairs`: the commonest (true, read as) pairs;
    - `unlike_any_take`: the share of misread frames farther (shape features) from every take of their own class
      than 95 % of the frames read right are: a pose or camera angle the takes never showed;
    - `nearer_other_letter`: the share (of the rest) that lie nearer a take of the letter they were read as than
      any take of their own: a letter formed like another (or two ways);
    - `roll_off_deg`: median in-plane angle (wrist to middle knuckle) from the nearest own-class take, misread
      and right;
    - `unlike_the_part`: per misread class, the share of its test frames farther from every frame of its whole
      calibration part than 95 % of that part's frames are from their nearest neighbour: what no take drawn
      from that part could have shown;
    - for ayuraj, the error rate per camera view of the test part."""
    ok, _ = fold.read(model)
    pred = _predictions(model, fold)
    train_x = samples.features()[:, :63]
    train_y = np.array([CLASSES.index(c) for c in samples.labels])
    x = fold.x_test[:, :63]
    own = np.full(len(x), np.inf)
    other = np.full(len(x), np.inf)
    roll_off = np.full(len(x), np.nan)
    roll, train_roll = _roll(x), _roll(train_x)
    for c in np.unique(fold.y_test):
        m = fold.y_test == c
        mine = train_y == c
        if mine.any():
            own[m] = _nearest(x[m], train_x[mine])
            diff = np.abs((roll[m][:, None] - train_roll[mine][None, :] + 180) % 360 - 180)
            roll_off[m] = diff.min(1)
    wrong = np.flatnonzero(~ok)
    for i in wrong:
        theirs = train_y == pred[i]
        if theirs.any():
            other[i] = _nearest(x[i:i + 1], train_x[theirs])[0]
    limit = np.percentile(own[ok & np.isfinite(own)], 95) if (ok & np.isfinite(own)).any() else np.inf
    unlike = own[wrong] > limit
    pairs: dict[str, int] = {}
    for i in wrong:
        key = f"{CLASSES[fold.y_test[i]]}>{CLASSES[pred[i]]}"
        pairs[key] = pairs.get(key, 0) + 1
    out = {"misread": int(len(wrong)), "test": int(len(x)),
           "pairs": dict(sorted(pairs.items(), key=lambda kv: -kv[1])[:6]),
           "unlike_any_take": round(float(unlike.mean()), 3) if len(wrong) else 0.0,
           "nearer_other_letter": round(float((other[wrong][~unlike] < own[wrong][~unlike]).mean()), 3)
           if (~unlike).any() else 0.0,
           "roll_off_deg": {"misread": round(float(np.nanmedian(roll_off[wrong])), 1) if len(wrong) else None,
                            "right": round(float(np.nanmedian(roll_off[ok])), 1)}}
    feats = fold.person.features()[:, :63]
    out["unlike_the_part"] = {}  # per misread class: its test frames unlike any of its calibration part's frames
    for c in dict.fromkeys(k.split(">")[0] for k in out["pairs"]):
        part, tested = feats[fold.pool[c]], x[fold.y_test == CLASSES.index(c)]
        gaps = np.sqrt(((part[:, None] - part[None]) ** 2).sum(-1))
        np.fill_diagonal(gaps, np.inf)
        out["unlike_the_part"][c] = round(float((_nearest(tested, part) > np.percentile(gaps.min(1), 95)).mean()), 3)
    if fold.signer.startswith("ayuraj"):
        from ml.calibration import _AYURAJ_VIEW
        test_paths = fold.person.path[_test_mask(fold)]
        views = np.array([_AYURAJ_VIEW.search(p).group(1) for p in test_paths])
        out["error_by_view"] = {v: round(float((~ok[views == v]).mean()), 3) for v in np.unique(views)}
    return out


def _test_mask(fold: Fold) -> np.ndarray:
    from ml.calibration import calibration_parts
    return calibration_parts(fold.person, fold.signer)[1]


def _predictions(model, fold: Fold) -> np.ndarray:
    import torch
    from ml.augment import held_windows
    model.eval()
    with torch.inference_mode():
        return model(torch.as_tensor(held_windows(fold.x_test, fold.meta["window"]))).argmax(-1).numpy()


def _nearest(x: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Per row of x, the distance to the nearest row of ref."""
    d = (x ** 2).sum(1)[:, None] - 2 * x @ ref.T + (ref ** 2).sum(1)[None, :]
    return np.sqrt(np.maximum(d.min(1), 0))


def _roll(shape: np.ndarray) -> np.ndarray:
    """In-plane angle (degrees) of the wrist -> middle knuckle direction, from 63 shape features."""
    return np.degrees(np.arctan2(shape[:, 9 * 3 + 1], shape[:, 9 * 3]))


def run_practice(signers: list[str], train_options: list[str], folds_dir: str | None, emit, seed: int = 0,
                 adapt_options: dict | None = None, keep: int | None = None, after=WORDS_AFTER,
                 words=None) -> list[dict]:
    """Per signer: the fold model before, calibration alone, practice alone and calibration + practice after each
    of `after` words (`words`, else ml.practice_words'); `keep`: each class keeps only its newest `keep` frames (Samples.latest) before adapting.
    Adaptation runs its full steps whatever the machine's load (max_seconds None unless adapt_options says)."""
    adapt_options = {"max_seconds": None, **(adapt_options or {})}
    rows = []
    for fold in folds(signers, train_options, folds_dir, seed):
        shared, shared_video = fold.read(fold.model)
        calibration, calibrated = settled_calibration(fold)
        practice, word_of = practice_takes(fold, calibrated, words or PRACTICE_WORDS, seed=seed)
        row = {"signer": fold.signer, "options": adapt_options, "keep": keep, "test": int(len(fold.y_test)),
               "classes": len(fold.pool), "before": _share(shared), "video_before": _share(shared_video)}
        runs = [("calibration", calibration, None)]
        for n in after:
            spelled = practice.subset(word_of < n)
            both, fresh = Samples.concat([calibration, spelled]), np.arange(len(calibration) + len(spelled))
            runs += [(f"practice {n}", spelled, None), (f"calibration + practice {n}", both, None),
                     (f"guarded {n}", both, fresh >= len(calibration))]
        current = None  # the calibration model, which a guarded run compares with
        for name, samples, fresh in runs:
            if keep:
                kept = samples.newest(keep)
                samples, fresh = samples.subset(kept), None if fresh is None else fresh[kept]
            guard = {} if fresh is None else {"current": current, "fresh": fresh}
            result, seconds, cpu = adapt_as_served(fold, samples, seed, {**adapt_options, **guard})
            current = result.model if name == "calibration" else current
            ok, video_ok = fold.read(result.model)
            row[name] = {"after": _share(ok), "video_after": _share(video_ok), "samples": len(samples),
                         "seconds": round(seconds, 2), "cpu_seconds": round(cpu, 2), "steps": result.steps,
                         "kept_shared": result.kept_shared, "kept": result.kept, "compared": result.compared}
            if name == f"calibration + practice {after[-1]}":
                row["misreads"] = misreads(fold, result.model, samples)
                row["per_class"] = {CLASSES[c]: round(float(ok[fold.y_test == c].mean()), 3)
                                    for c in np.unique(fold.y_test)}
        rows.append(row)
        emit(row)
    print(table(rows, after), file=sys.stderr)
    return rows


def _share(ok: np.ndarray | None) -> float | None:
    return None if ok is None else round(float(ok.mean()), 4)


def table(rows: list[dict], after=WORDS_AFTER) -> str:
    """The docs' markdown table: per signer, test accuracy held still (through the live window for video sources,
    in brackets) before, with calibration alone, practice alone and calibration + practice after each count."""
    def pct(v):
        return f"{v:.1%}" if v is not None else ""

    names = ["calibration", *(f"practice {n}" for n in after), *(f"calibration + practice {n}" for n in after),
             *(f"guarded {n}" for n in after)]
    lines = ["| signer | before | calibration | " + " | ".join(f"practice, {n} words" for n in after) + " | "
             + " | ".join(f"calibration + {n} words" for n in after) + " | "
             + " | ".join(f"guarded, {n} words" for n in after) + " | adaptation s, wall / CPU (max) |",
             "|" + " --- |" * (3 + 3 * len(after) + 1)]
    for r in rows:
        cells = [pct(r["before"])] + [pct(r[n]["after"]) for n in names]
        video = [pct(r["video_before"])] + [pct(r[n]["video_after"]) for n in names]
        if r["video_before"] is not None:
            cells = [f"{a} ({b})" for a, b in zip(cells, video)]
        wall, cpu = (max(r[n].get(k, 0) for n in names) for k in ("seconds", "cpu_seconds"))
        lines.append(f"| {r['signer']} | " + " | ".join(cells) + f" | {wall:.1f} / {cpu:.1f} |")
    means = [np.mean([r["before"] for r in rows])] + [np.mean([r[n]["after"] for r in rows]) for n in names]
    worst = [min(r["before"] for r in rows)] + [min(r[n]["after"] for r in rows) for n in names]
    lines.append("| **mean** | " + " | ".join(f"**{v:.1%}**" for v in means) + " | |")
    lines.append("| worst signer | " + " | ".join(f"{v:.1%}" for v in worst) + " | |")
    return "\n".join(lines)
