"""Reference drawings for the calibration page: each calibration class's median hand pose in the training data,
its depth (the page paints far fingers first, near ones over them), a caption a learner can follow, and the
wrist path of J and Z, as a small JSON the page draws (our derived data, no photo).

    python -m ml.poses [--datasets kaggle ayuraj asl_ai bisonhacks signademy] [--out static/calibration/poses.json]

Coordinates are those of a right hand in a true (unmirrored) square image, x right and y down, in [0, 1] like
MediaPipe's landmarks: the page draws them like live landmarks (mirrored with the video by its CSS). The median
is taken per signer first, then across signers, so a prolific signer does not decide the shape.
"""
from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from ml.augment import LETTER_PATHS, points, trace
from ml.config import load_config, project_path
from ml.datasets import SOURCES
from ml.personal import CALIBRATION_CLASSES
from ml.train import TrainError, load_sets

DEFAULT_OUT = "static/calibration/poses.json"
MARGIN = 0.1  # of the box, around the drawn hand
TRACED_BY = {"J": 20, "Z": 8}  # the fingertip that draws the letter (pinky, index): where to draw the path from
# What to do with the hand, as the drawing cannot say it all (the page shows it under the drawing and reads it out).
# `space` and `del` are no ASL signs: the hand shapes the training photos use for them.
CAPTIONS = {
    "A": "Fist, thumb straight up against the side of the index finger",
    "B": "Flat hand, fingers together and up, thumb folded across the palm",
    "C": "Fingers and thumb curved into a C",
    "D": "Index finger up; the other fingertips touch the thumb",
    "E": "Fingertips bent down onto the thumb, folded across the palm",
    "F": "Index fingertip touches the thumb; the other three fingers up",
    "G": "Index finger and thumb point sideways, parallel; the rest closed",
    "H": "Index and middle fingers together, pointing sideways",
    "I": "Fist, little finger up",
    "J": "Little finger up, then draw a J: down and hook round",
    "K": "Index and middle fingers up in a V, thumb between them",
    "L": "Thumb and index finger make an L; the rest closed",
    "M": "Thumb under the first three fingers, fingertips down",
    "N": "Thumb under the first two fingers, fingertips down",
    "O": "All fingertips touch the thumb: an O",
    "P": "A K pointing down",
    "Q": "A G pointing down",
    "R": "Index and middle fingers up, crossed",
    "S": "Fist, thumb across the front of the fingers",
    "T": "Fist, thumb between the index and middle fingers",
    "U": "Index and middle fingers up, together",
    "V": "Index and middle fingers up, apart",
    "W": "Index, middle and ring fingers up, apart",
    "X": "Index finger hooked, the rest closed",
    "Y": "Thumb and little finger out, the rest closed",
    "Z": "Index finger draws a Z in the air",
    "space": "Not an ASL sign (ends a word): palm up, fingers together pointing sideways, thumb up",
    "del": "Not an ASL sign (deletes): fingers together, hanging down from a bent wrist",
}


def median_poses(features: np.ndarray, labels: np.ndarray, groups: np.ndarray) -> dict[str, np.ndarray]:
    """{class: (21, 3) median x, y, z in palm units (wrist at the origin)} for the calibration classes present."""
    pts = points(features)
    poses = {}
    for cls in CALIBRATION_CLASSES:
        m = labels == cls
        if m.any():
            per_signer = [np.median(pts[m & (groups == g)], axis=0) for g in np.unique(groups[m])]
            poses[cls] = np.median(per_signer, axis=0)
    return poses


def build(features: np.ndarray, labels: np.ndarray, groups: np.ndarray) -> dict:
    """The JSON: every pose centred in its own square at one shared scale (hands keep their relative size)."""
    poses = median_poses(features, labels, groups)
    span = max(float(np.ptp(p[:, :2], axis=0).max()) for p in poses.values())
    scale = (1 - 2 * MARGIN) / span
    out = {"about": "median hand pose per calibration class in the project's training data (right hand, true "
                    "image, x right, y down, 0..1); depth: each landmark's z in the same units (smaller: nearer "
                    "the camera); caption: what to do; motion: the path of J and Z (the wrist's, which the model "
                    "reads) relative to where it starts, in the same units; traced_by: the landmark to draw it from",
           "connections": [[0, 1], [1, 2], [2, 3], [3, 4], [0, 5], [5, 6], [6, 7], [7, 8], [5, 9], [9, 10],
                           [10, 11], [11, 12], [9, 13], [13, 14], [14, 15], [15, 16], [13, 17], [0, 17],
                           [17, 18], [18, 19], [19, 20]],
           "classes": {}}
    for cls, pose in poses.items():
        xy = pose[:, :2]
        entry = {"landmarks": np.round((xy - (xy.min(0) + xy.max(0)) / 2) * scale + 0.5, 4).tolist(),
                 "depth": np.round(pose[:, 2] * scale, 4).tolist(), "caption": CAPTIONS[cls]}
        if cls in LETTER_PATHS:  # one palm across: the drawing's scale, smaller than most signers' motion
            entry["motion"] = np.round(trace(LETTER_PATHS[cls], np.linspace(0, 1, 16)) * scale, 4).tolist()
            entry["traced_by"] = TRACED_BY[cls]
        out["classes"][cls] = entry
    out["missing"] = [c for c in CALIBRATION_CLASSES if c not in poses]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ml.poses", description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", nargs="+", default=list(SOURCES))
    parser.add_argument("--out", default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    try:
        data = load_sets(args.datasets, load_config())
    except TrainError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    result = build(data.features(), data.y, data.group)
    out = project_path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, separators=(",", ":")) + "\n")
    print(f"{out}: {len(result['classes'])} classes, missing {result['missing'] or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
