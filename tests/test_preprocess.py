"""ml.preprocess CLI on a small real folder: landmarks out, images without a hand counted and listed."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from ml.config import ROOT
from ml.landmark_set import LandmarkSet
from ml.preprocess import main
from tests.conftest import HANG_GUARD_S, cli_in_process, shared_data


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "ml.preprocess", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=HANG_GUARD_S)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Lower- and upper-case class folders, a tight crop, a photo without a hand, and a corrupt file."""
    kaggle, ayuraj = shared_data("kaggle"), shared_data("ayuraj")
    root = tmp_path_factory.mktemp("photos")
    picks = {"a": [kaggle / "A/A1008.jpg", ayuraj / "A/hand1_a_bot_seg_2_cropped.jpeg"],
             "V": [kaggle / "V/V1002.jpg"], "nothing": [kaggle / "nothing/nothing1001.jpg"]}
    for cls, paths in picks.items():
        (root / cls).mkdir()
        for p in paths:
            shutil.copy(p, root / cls / p.name)
    (root / "V" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    return root


def test_cli_writes_a_landmark_set_and_lists_every_failure(folder, tmp_path):
    out = tmp_path / "set.npz"
    result = run_cli(folder, "--out", out, "--group", "me", "--workers", "2")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["images"] == 5 and summary["detected"] == 3
    assert summary["no_hand"] == 1 and summary["unreadable"] == 1
    data = LandmarkSet.load(out)
    assert sorted(data.y) == ["A", "A", "V"]  # 'a' == 'A'
    assert set(data.group) == {"me"} and set(data.handedness) == {"Left"}
    assert data.X.shape == (3, 21, 3) and np.all(np.isfinite(data.X))
    np.testing.assert_allclose(data.aspect, 1.0)
    assert any(p.endswith("hand1_a_bot_seg_2_cropped.jpeg") for p in data.path)  # found with the padded retry
    failures = json.loads((tmp_path / "set.failures.json").read_text())["failures"]
    assert {(f["class"], f["reason"].split(":")[-1].strip()) for f in failures} == {
        ("nothing", "no hand found"), ("V", "not a decodable image")}
    assert "broken.png" in result.stderr and "nothing1001.jpg" in result.stderr


def test_cli_errors_are_clear(tmp_path):
    # in this process: the CLI's start is the test above's (three more interpreter starts proved nothing more)
    missing = cli_in_process(main, tmp_path / "absent", "--out", tmp_path / "x.npz")
    assert missing.returncode == 2 and "no such folder" in missing.stderr
    (tmp_path / "empty" / "A").mkdir(parents=True)
    empty = cli_in_process(main, tmp_path / "empty", "--out", tmp_path / "x.npz")
    assert empty.returncode == 2 and "no images" in empty.stderr
    bad_out = cli_in_process(main, tmp_path, "--out", tmp_path / "x.csv")
    assert bad_out.returncode == 2 and ".npz" in bad_out.stderr
    assert not (tmp_path / "x.npz").exists()


def test_letter_clips_give_the_held_frames_of_the_raised_hand(tmp_path):
    """A real clip: the signer starts with both hands in the lap and raises one for the letter. Only the held
    second half is kept, and never the resting hand (a one-hand tracker locked onto it in the A clip)."""
    from ml.preprocess import preprocess_videos

    videos = shared_data("signademy")
    for letter in "AB":
        (tmp_path / f"{letter}.mp4").symlink_to(videos / f"{letter}.mp4")
    (tmp_path / "notes.txt").write_text("not a clip")
    result = preprocess_videos(tmp_path, group="clips")
    data = result.landmarks
    assert result.total == 2 and not result.failures
    assert set(data.y) == {"A", "B"} and set(data.group) == {"clips"}
    for letter in "AB":
        frames = [int(p.rsplit(":", 1)[1]) for p in data.path[data.y == letter]]
        assert len(frames) >= 45 and min(frames) >= 50  # clips are ~110 frames; the first half is skipped
    assert np.allclose(data.aspect, 1080 / 1920)
    assert data.X[:, 0, 1].max() < 0.75  # every kept wrist is raised: the lap is at ~0.9 of the height


def test_a_folder_without_clips_is_a_clear_error(tmp_path):
    from ml.preprocess import preprocess_videos

    with pytest.raises(ValueError, match="no video clips"):
        preprocess_videos(tmp_path)
