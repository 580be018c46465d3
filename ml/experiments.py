"""The measurements behind docs/EXPERIMENTS.md and the model card, reproducible:

    python -m ml.experiments conventions            # how to bring the webcam sets to the photo convention
    python -m ml.experiments loso [TRAIN OPTIONS]   # leave-one-signer-out + the Kaggle 80/20 split
    python -m ml.experiments calibrate [--folds DIR] [TRAIN OPTIONS]   # personal models for unseen signers
    python -m ml.experiments practice [--folds DIR] [TRAIN OPTIONS]    # ... from practice words, with calibration

Each prints one JSON line per measurement. TRAIN OPTIONS are passed to ml.train (e.g. --epochs 30 --mirror 0.2).
"""
from __future__ import annotations

import itertools
import json
import os
import sys
import tempfile

import numpy as np

from ml.checkpoint import load_checkpoint
from ml.datasets import SOURCES, load_dataset
from ml.evaluate import predict
from ml.train import parse_args, run

# The issue's four unseen signers, then the signademy person (video clips: a fifth test of a stranger).
ISSUE_SIGNERS = ("kaggle", "asl_ai", "ayuraj-hand1", "ayuraj-hand2")
SIGNERS = (*ISSUE_SIGNERS, "signademy")
KAGGLE_SPLIT = "kaggle:0.2"
# Calibration is measured on these (bisonhacks' three people too: a webcam recording each).
CALIBRATE_SIGNERS = (*SIGNERS, "bisonhacks-person1", "bisonhacks-person2", "bisonhacks-person3")


def train(options: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as out:
        return run(parse_args([*options, "--out", out]), emit=lambda line: None)


def conventions(options: list[str]) -> None:
    """Train on the photos only (their convention is known: true images, MediaPipe's handedness), then score
    each webcam set under every candidate convention. The right convention is the one that scores best."""
    with tempfile.TemporaryDirectory() as out:
        run(parse_args(["--datasets", "kaggle", "ayuraj", "--out", out, *options]), emit=lambda line: None)
        model, meta = load_checkpoint(f"{out}/best_model.pth")
        for name, mirrored, right, aspect in itertools.product(("asl_ai", "bisonhacks"), (True, False),
                                                               (True, False), (1.0, 4 / 3, 16 / 9)):
            data = load_dataset(name, mirrored=mirrored, right_hand=right, aspect=aspect)
            pred = np.array(meta["classes"])[predict(model, meta, data).argmax(1)]
            print(json.dumps({"source": name, "mirrored": mirrored, "right_hand": right, "aspect": round(aspect, 3),
                              "accuracy": round(float((pred == data.y).mean()), 4)}), flush=True)


def loso(options: list[str]) -> None:
    """LOSO_SIGNERS=kaggle,asl_ai (environment) limits the run to some signers; LOSO_SPLIT=0 skips the split."""
    signers = [s for s in os.environ.get("LOSO_SIGNERS", ",".join(SIGNERS)).split(",") if s]
    base = ["--datasets", *SOURCES, *options]
    results, seen = {}, {}
    for signer in signers:
        m = train([*base, "--test-groups", signer])
        results[signer], seen[signer] = m["test_acc"], m["test_acc_seen_classes"]
        print(json.dumps({"test": signer, "accuracy": round(m["test_acc"], 4),
                          "accuracy_seen_classes": round(seen[signer], 4), "options": options}), flush=True)
    for name, chosen in (("unseen-signer mean, the issue's four", ISSUE_SIGNERS), ("unseen-signer mean", signers)):
        if set(chosen) <= set(results):
            print(json.dumps({"test": name, "accuracy": round(float(np.mean([results[s] for s in chosen])), 4),
                              "accuracy_seen_classes": round(float(np.mean([seen[s] for s in chosen])), 4),
                              "signers": list(chosen), "options": options}), flush=True)
    if os.environ.get("LOSO_SPLIT", "1") == "0":
        return
    m = train([*base, "--test-fraction", KAGGLE_SPLIT])
    print(json.dumps({"test": "kaggle 20% split", "accuracy": round(m["test_acc"], 4), "options": options}),
          flush=True)


def folds_option(options: list[str]) -> tuple[str | None, list[str]]:
    """(--folds DIR or None, the other options)."""
    if "--folds" not in options:
        return None, options
    i = options.index("--folds")
    return options[i + 1], options[:i] + options[i + 2:]


def calibrate(options: list[str]) -> None:
    """Per unseen signer: calibrate the fold model (trained without them) on CALIBRATION_SIZES frames per class from
    one part of their data, test before and after on the rest (ml.calibration). --folds DIR keeps (and reuses)
    the fold models as DIR/<signer>/best_model.pth; CALIBRATE_SIGNERS=a,b limits the signers;
    CALIBRATE_ADAPT='{"steps": 150}' passes a recipe variant to ml.personal.adapt."""
    from ml.calibration import run_calibration
    folds, options = folds_option(options)
    signers = [s for s in os.environ.get("CALIBRATE_SIGNERS", ",".join(CALIBRATE_SIGNERS)).split(",") if s]
    run_calibration(signers, ["--datasets", *SOURCES, *options], folds,
                    emit=lambda record: print(json.dumps(record), flush=True),
                    adapt_options=json.loads(os.environ.get("CALIBRATE_ADAPT", "{}")))


def practice(options: list[str]) -> None:
    """Per unseen signer: practice words spelled from one part of their data, alone and after calibration (also
    guarded: compared with the calibration model, the better kept), tested on another part after 10, 20 and 40
    words (ml.practice). --folds DIR as for calibrate; PRACTICE_SIGNERS=a,b
    limits the signers; PRACTICE_ADAPT='{"balance": true}' passes a recipe variant to ml.personal.adapt;
    PRACTICE_KEEP=N keeps each class's newest N frames only; PRACTICE_AFTER=40 (or 10,40) measures after those
    counts of words only; PRACTICE_SEED=1 draws the takes and adapts with another seed; PRACTICE_WORDS=THE,HAT,...
    practises another list than ml.practice_words'."""
    from ml.practice import run_practice
    folds, options = folds_option(options)
    signers = [s for s in os.environ.get("PRACTICE_SIGNERS", ",".join(CALIBRATE_SIGNERS)).split(",") if s]
    keep = os.environ.get("PRACTICE_KEEP")
    run_practice(signers, ["--datasets", *SOURCES, *options], folds,
                 emit=lambda record: print(json.dumps(record), flush=True),
                 adapt_options=json.loads(os.environ.get("PRACTICE_ADAPT", "{}")), keep=int(keep) if keep else None,
                 after=tuple(int(n) for n in os.environ.get("PRACTICE_AFTER", "10,20,40").split(",")),
                 seed=int(os.environ.get("PRACTICE_SEED", "0")),
                 words=[w for w in os.environ.get("PRACTICE_WORDS", "").split(",") if w] or None)


if __name__ == "__main__":
    {"conventions": conventions, "loso": loso, "calibrate": calibrate, "practice": practice}[sys.argv[1]](sys.argv[2:])
