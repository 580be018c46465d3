"""ml.evaluate: its JSON and PNG on a small real folder of tight crops, a landmark set, and bad input."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from ml.checkpoint import save_checkpoint
from ml.config import ROOT
from ml.evaluate import main, report
from ml.model import CLASSES, SignGRU
from tests.conftest import HANG_GUARD_S, SHIPPED_CHECKPOINT, cli_in_process, shared_data
from tests.synthetic import write_synthetic


def evaluate_cli(*args):
    return subprocess.run([sys.executable, "-m", "ml.evaluate", *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, timeout=HANG_GUARD_S)


@pytest.fixture(scope="module")
def crops(tmp_path_factory):
    """Tightly cropped photos in lower-case class folders (jpeg and png), plus a photo with no hand."""
    import cv2

    ayuraj, kaggle = shared_data("ayuraj"), shared_data("kaggle")
    root = tmp_path_factory.mktemp("crops")
    for letter in "blv":
        (root / letter).mkdir()
        for path in sorted((ayuraj / letter.upper()).glob("hand2_*_seg_1_cropped.jpeg"))[:2]:
            shutil.copy(path, root / letter / path.name)
    image = cv2.imread(str(sorted((ayuraj / "B").glob("hand1_*_seg_2_cropped.jpeg"))[0]))
    cv2.imwrite(str(root / "b" / "extra.png"), image)
    (root / "nothing").mkdir()
    shutil.copy(kaggle / "nothing/nothing1001.jpg", root / "nothing")
    return root


def test_image_folder_gives_the_specified_json_and_a_png(crops, tmp_path):
    out, png = tmp_path / "eval.json", tmp_path / "confusion.png"
    result = evaluate_cli("--checkpoint", SHIPPED_CHECKPOINT, "--data", crops, "--json", out, "--confusion", png,
                          "--workers", "2")
    assert result.returncode == 0, result.stderr
    data = json.loads(out.read_text())
    assert data["n"] == 8 and data["detected"] == 7 and data["no_hand"] == 1
    assert data["nothing"] == {"images": 1, "no_hand": 1, "detected": 0}
    assert set(data["per_class"]) >= {"B", "L", "V"}
    assert {data["per_class"][c]["support"] for c in "LV"} == {2} and data["per_class"]["B"]["support"] == 3
    confusion = np.array(data["confusion"])
    assert confusion.shape == (29, 29) and confusion.sum() == 7
    assert data["accuracy"] == pytest.approx(np.trace(confusion) / 7)
    assert data["accuracy_no_hand_as_nothing"] == pytest.approx((np.trace(confusion) + 1) / 8)
    assert data["accuracy"] >= 5 / 7  # seen people, clear letters: the shipped model knows them
    assert f"accuracy {data['accuracy']:.4f}" in result.stdout
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def test_landmark_set_input(tmp_path):
    data = write_synthetic(tmp_path / "s.npz", per_class=2, classes=CLASSES[:3])
    result = cli_in_process(main, "--checkpoint", SHIPPED_CHECKPOINT, "--data", data, "--json", tmp_path / "e.json")
    assert result.returncode == 0, result.stderr
    out = json.loads((tmp_path / "e.json").read_text())
    assert out["n"] == out["detected"] == 6 and out["no_hand"] == 0


def test_report_precision_and_recall():
    truth = np.array(["A", "A", "A", "B", "B"])
    pred = np.array(["A", "A", "B", "B", "C"])
    r = report(CLASSES, truth, pred, [{"path": "x", "class": "nothing", "reason": "no hand found"}])
    assert r["accuracy"] == pytest.approx(3 / 5)
    assert r["per_class"]["A"] == {"precision": 1.0, "recall": pytest.approx(2 / 3), "support": 3}
    assert r["per_class"]["B"] == {"precision": 0.5, "recall": 0.5, "support": 2}
    assert r["per_class"]["C"] == {"precision": 0.0, "recall": 0.0, "support": 0}
    assert r["accuracy_no_hand_as_nothing"] == pytest.approx(4 / 6)


def test_cli_errors_are_clear(tmp_path, crops):
    missing = cli_in_process(main, "--checkpoint", SHIPPED_CHECKPOINT, "--data", tmp_path / "absent")
    assert missing.returncode == 2 and "no such image folder" in missing.stderr
    (tmp_path / "empty").mkdir()
    empty = cli_in_process(main, "--checkpoint", SHIPPED_CHECKPOINT, "--data", tmp_path / "empty")
    assert empty.returncode == 2 and "no images" in empty.stderr
    wrong = tmp_path / "wrong.pth"
    save_checkpoint(wrong, SignGRU(n_features=42), classes=CLASSES, window=8)
    shape = cli_in_process(main, "--checkpoint", wrong, "--data", crops)
    assert shape.returncode == 2 and "does not fit" in shape.stderr
    absent = cli_in_process(main, "--checkpoint", tmp_path / "none.pth", "--data", crops)
    assert absent.returncode == 2 and "no such checkpoint" in absent.stderr
