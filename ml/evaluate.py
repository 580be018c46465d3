"""Evaluate a checkpoint on an image folder (<CLASS>/<images>, any case, jpg/jpeg/png) or a landmark set.

    python -m ml.evaluate --checkpoint PATH --data PATH [--json OUT] [--confusion OUT.png]

`accuracy` is over the samples where a hand was found. `nothing` means "no hand in view" (the live pipeline
emits it without asking the model), so the separate figure `accuracy_no_hand_as_nothing` counts a `nothing`
image without a hand as correct and any other image without a hand as wrong.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ml.landmark_set import LandmarkSet
from ml.preprocess import NO_HAND, preprocess_folder

if TYPE_CHECKING:
    import torch

# torch (and the modules that import it: ml.augment, ml.checkpoint) is imported where it is used, not here: the
# MediaPipe workers of an image folder are spawned, and each one imports this module again; they never touch the
# model, and at the top each one paid for a torch import (seconds of CPU).
NOTHING = "nothing"


def predict(model: torch.nn.Module, meta: dict, data: LandmarkSet, batch: int = 1024) -> np.ndarray:
    """(N, n_classes) probabilities: each sample held still for the model's window."""
    import torch

    from ml.augment import held_windows

    windows = held_windows(data.features(), meta["window"])
    device = next(model.parameters()).device
    out = []
    with torch.inference_mode():
        for i in range(0, len(windows), batch):
            out.append(torch.softmax(model(torch.as_tensor(windows[i:i + batch], device=device)).float(), -1).cpu())
    return torch.cat(out).numpy() if out else np.zeros((0, len(meta["classes"])), np.float32)


def report(classes: list[str], truth: np.ndarray, pred: np.ndarray, failures: list[dict] | None = None) -> dict:
    """The evaluation JSON from true and predicted class names (of detected samples) and detection failures."""
    failures = failures or []
    index = {c: i for i, c in enumerate(classes)}
    confusion = np.zeros((len(classes), len(classes)), int)
    for t, p in zip(truth, pred):
        confusion[index[t], index[p]] += 1
    per_class = {}
    for c, i in index.items():
        support, predicted, hit = int(confusion[i].sum()), int(confusion[:, i].sum()), int(confusion[i, i])
        if support or predicted:
            per_class[c] = {"precision": hit / predicted if predicted else 0.0,
                            "recall": hit / support if support else 0.0, "support": support}
    no_hand = [f for f in failures if f["reason"] == NO_HAND]
    readable = len(truth) + len(no_hand)
    correct = int((truth == pred).sum())
    nothing_no_hand = sum(f["class"] == NOTHING for f in no_hand)
    return {
        "accuracy": correct / len(truth) if len(truth) else None,
        "n": len(truth) + len(failures), "detected": len(truth), "no_hand": len(no_hand),
        "unreadable": len(failures) - len(no_hand),
        "accuracy_no_hand_as_nothing": (correct + nothing_no_hand) / readable if readable else None,
        "nothing": {"images": int((truth == NOTHING).sum()) + sum(f["class"] == NOTHING for f in failures),
                    "no_hand": nothing_no_hand, "detected": int((truth == NOTHING).sum())},
        "per_class": per_class, "classes": classes, "confusion": confusion.tolist(),
        "failures": failures,
    }


def plot_confusion(result: dict, out: str | Path) -> None:
    """A readable confusion matrix PNG (rows: true class, columns: predicted), classes that occur only."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    classes, matrix = result["classes"], np.array(result["confusion"])
    used = [i for i in range(len(classes)) if matrix[i].sum() or matrix[:, i].sum()]
    matrix = matrix[np.ix_(used, used)]
    names = [classes[i] for i in used]
    rows = matrix.sum(1, keepdims=True)
    share = np.divide(matrix, rows, out=np.zeros(matrix.shape), where=rows > 0)
    size = max(6.0, 0.38 * len(names) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(names)), names, rotation=90)
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    acc = result["accuracy"]
    ax.set_title(f"accuracy {acc:.1%} on {result['detected']} samples" if acc is not None else "no samples")
    for (r, c), v in np.ndenumerate(matrix):
        if v:
            ax.text(c, r, str(v), ha="center", va="center", fontsize=7, color="white" if share[r, c] > 0.5 else "black")
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def evaluate(checkpoint: str | Path, data_path: str | Path, workers: int | None = None) -> dict:
    """Raises CheckpointError, FileNotFoundError or ValueError with a clear message."""
    from ml.checkpoint import load_checkpoint

    model, meta = load_checkpoint(checkpoint)
    data_path = Path(data_path)
    if data_path.is_dir():
        pre = preprocess_folder(data_path, workers=workers)
        data, failures = pre.landmarks, pre.failures
    elif data_path.suffix == ".npz" and data_path.is_file():
        data, failures = LandmarkSet.load(data_path), []
    else:
        raise FileNotFoundError(f"{data_path}: no such image folder or landmark set (.npz)")
    unknown = sorted(set(data.y) - set(meta["classes"]))
    if unknown:
        raise ValueError(f"{data_path}: classes {unknown} are not among the model's {meta['classes']}")
    probs = predict(model, meta, data)
    pred = np.array(meta["classes"])[probs.argmax(1)] if len(probs) else np.array([], str)
    return report(meta["classes"], data.y, pred, failures)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ml.evaluate", description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--data", required=True, help="image folder <CLASS>/<images> or landmark set .npz")
    parser.add_argument("--json", help="write the full result here")
    parser.add_argument("--confusion", help="write a confusion matrix PNG here")
    parser.add_argument("--workers", type=int, default=None, help="MediaPipe worker processes for a folder")
    args = parser.parse_args(argv)
    import torch

    from ml.checkpoint import CheckpointError

    torch.set_num_threads(2)
    try:
        result = evaluate(args.checkpoint, args.data, args.workers)
    except (CheckpointError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    if args.confusion:
        plot_confusion(result, args.confusion)
    acc = result["accuracy"]
    print(f"accuracy {acc:.4f} on {result['detected']} of {result['n']} images with a hand"
          if acc is not None else f"no hand found in any of {result['n']} images")
    print(f"no hand: {result['no_hand']} (of them nothing: {result['nothing']['no_hand']}), unreadable: "
          f"{result['unreadable']}; counting no-hand `nothing` images as correct: "
          f"{result['accuracy_no_hand_as_nothing'] or 0:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
