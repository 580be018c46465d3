"""Reference drawings for the calibration page: each calibration class's median hand pose in the training data,
and the wrist path of J and Z, as a small JSON the page draws (our derived data, no photo).

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


def median_poses(features: np.ndarray, labels: np.ndarray, groups: np.ndarray) -> dict[str, np.ndarray]:
    """{class: (21, 2) median x, y in palm units (wrist at the origin)} for the calibration classes present."""
    pts = points(features)[..., :2]
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
    span = max(float(np.ptp(p, axis=0).max()) for p in poses.values())
    scale = (1 - 2 * MARGIN) / span
    out = {"about": "median hand pose per calibration class in the project's training data (right hand, true "
                    "image, x right, y down, 0..1); motion: the path of J and Z (the wrist's, which the model "
                    "reads) relative to where it starts, in the same units; traced_by: the landmark to draw it from",
           "connections": [[0, 1], [1, 2], [2, 3], [3, 4], [0, 5], [5, 6], [6, 7], [7, 8], [5, 9], [9, 10],
                           [10, 11], [11, 12], [9, 13], [13, 14], [14, 15], [15, 16], [13, 17], [0, 17],
                           [17, 18], [18, 19], [19, 20]],
           "classes": {}}
    for cls, pose in poses.items():
        entry = {"landmarks": np.round((pose - (pose.min(0) + pose.max(0)) / 2) * scale + 0.5, 4).tolist()}
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
