"""ml.poses: the calibration page's reference drawings."""
from __future__ import annotations

import json

import numpy as np

from ml.config import ROOT
from ml.personal import CALIBRATION_CLASSES
from ml.poses import DEFAULT_OUT, build
from tests.synthetic import synthetic_set


def check(drawings: dict) -> None:
    assert set(drawings["classes"]) == set(CALIBRATION_CLASSES) and drawings["missing"] == []
    for cls, entry in drawings["classes"].items():
        pts = np.array(entry["landmarks"])
        assert pts.shape == (21, 2) and (pts >= 0).all() and (pts <= 1).all(), cls
        assert ("motion" in entry) == (cls in ("J", "Z"))
        # The page paints far parts first (depth) and says what to do (caption; space and del are no ASL signs).
        assert len(entry["depth"]) == 21 and entry["depth"][0] == 0, cls
        assert entry["caption"] and (("Not an ASL sign" in entry["caption"]) == (cls in ("space", "del"))), cls
    assert len({entry["caption"] for entry in drawings["classes"].values()}) == len(drawings["classes"])
    assert len(drawings["connections"]) == 21


def test_the_shipped_drawings_cover_every_calibration_class():
    check(json.loads((ROOT / DEFAULT_OUT).read_text()))


def test_median_poses_are_per_signer_then_across_signers():
    """Two signers, one with nine times the samples of the other: both weigh the same in the median."""
    data = synthetic_set(per_class=3, groups=("a", "b", "c"))
    result = build(data.features(), data.y, data.group)
    check(result)
    json.dumps(result)  # plain JSON
    f = data.features()
    small = data.group == "a"
    many = np.concatenate([f[~small]] * 9 + [f[small]])
    labels = np.concatenate([data.y[~small]] * 9 + [data.y[small]])
    groups = np.concatenate([data.group[~small]] * 9 + [data.group[small]])
    assert build(many, labels, groups)["classes"] == result["classes"]
