"""ml.personal: calibration samples, and adapting the shipped model to one user's real landmarks."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from ml.checkpoint import load_checkpoint
from ml.config import ROOT, data_path, load_config
from ml.datasets import load_dataset
from ml.features import FEATURE_VERSION, N_FEATURES
from ml.personal import (CALIBRATION_CLASSES, AdamW, PersonalError, Samples, adapt, take_windows, with_motion)
from tests.conftest import cli_in_process

CHECKPOINT = ROOT / "checkpoints" / "best_model.pth"


@pytest.fixture(scope="module")
def shipped():
    return load_checkpoint(CHECKPOINT)


@pytest.fixture(scope="module")
def webcam():
    """A real webcam landmark recording (asl-ai: one person, 26 letters, ~400 consecutive frames each)."""
    config = load_config()
    if not data_path(config, "asl_ai").exists():
        pytest.skip("../shared/data/asl-ai-landmarks is absent")
    return load_dataset("asl_ai", config)


def recorded(data, classes, per_class=20, start=0, labels=None) -> Samples:
    """`per_class` consecutive frames of each class from frame `start`, one take each, optionally relabelled."""
    idx = np.concatenate([np.flatnonzero(data.y == c)[start:start + per_class] for c in classes])
    y = data.y[idx] if labels is None else np.array([labels.get(c, c) for c in data.y[idx]])
    takes = np.array([list(classes).index(c) for c in data.y[idx]])
    return Samples(data.X[idx], data.aspect[idx], data.handedness[idx] == "Right", y, takes)


SWAP = {"K": "V", "V": "K"}


@pytest.fixture(scope="module")
def swapped(shipped, webcam):
    """A real person whose K and V are each other's (their recorded K frames are V-shaped), calibrated: (samples,
    result, progress calls, the shared model's weights before). Fewer, smaller steps than the server's (a busy test machine); no time bound, so the
    adaptation is deterministic."""
    model, meta = shipped
    samples = recorded(webcam, ["A", "B", "K", "L", "V", "Y"], labels=SWAP)
    calls, state = [], {k: v.clone() for k, v in model.state_dict().items()}
    result = adapt(model, meta, samples, steps=80, batch=32, replay_batch=32, max_seconds=None,
                   progress=lambda step, steps: calls.append((step, steps)))
    return samples, result, calls, state


def test_the_adaptations_adamw_steps_as_torchs(shipped):
    """ml.personal.AdamW (torch's functional update without torch.optim's class) moves a real model's weights as
    torch.optim.AdamW does, step for step, with the learning rate changed between steps and the head alone frozen
    for some steps (a parameter without a gradient keeps its value and its moments)."""
    model, _ = shipped
    ours, theirs = with_motion(model), with_motion(model)
    ours_opt = AdamW(ours.parameters(), lr=3e-3, weight_decay=1e-4)
    theirs_opt = torch.optim.AdamW(theirs.parameters(), lr=3e-3, weight_decay=1e-4)
    x = torch.randn(8, 5, N_FEATURES, generator=torch.Generator().manual_seed(0))
    y = torch.arange(8)
    for step in range(6):
        lr = 3e-3 * 0.5 * (1 + np.cos(np.pi * step / 6))
        ours_opt.lr = lr
        for group in theirs_opt.param_groups:
            group["lr"] = lr
        for net, opt in ((ours, ours_opt), (theirs, theirs_opt)):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(x), y).backward()
            if step in (2, 3):
                for p in net.head.parameters():
                    p.grad = None
            opt.step()
    moved = max((a - b).abs().max().item() for a, b in zip(ours.parameters(), with_motion(model).parameters()))
    assert moved > 1e-3  # the steps did something, so a wrong update would show
    for a, b in zip(ours.parameters(), theirs.parameters()):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)


def test_samples_round_trip_and_refuse_bad_input(tmp_path):
    rng = np.random.default_rng(0)
    s = Samples(rng.uniform(0, 1, (6, 21, 3)), np.full(6, 4 / 3), [True, False] * 3, list("AABBJJ"), [0, 0, 1, 1, 2, 2])
    loaded = Samples.load(s.save(tmp_path / "me.npz"))
    for name in ("landmarks", "aspect", "is_left", "labels", "takes"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(s, name))
    assert len(CALIBRATION_CLASSES) == 28 and "nothing" not in CALIBRATION_CLASSES
    with pytest.raises(PersonalError, match="unknown classes"):
        Samples(s.landmarks, s.aspect, s.is_left, list("AABBJ") + ["nothing"], s.takes)
    with pytest.raises(PersonalError, match="21, 3"):
        Samples(np.zeros((6, 20, 3)), s.aspect, s.is_left, s.labels, s.takes)
    with pytest.raises(PersonalError, match="one entry per frame"):
        Samples(s.landmarks, s.aspect[:5], s.is_left, s.labels, s.takes)
    bad = s.landmarks.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(PersonalError, match="finite"):
        Samples(bad, s.aspect, s.is_left, s.labels, s.takes)
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    with pytest.raises(PersonalError, match="not calibration samples"):
        Samples.load(tmp_path / "other.npz")


def test_too_few_samples_is_a_clear_error(shipped):
    model, meta = shipped
    rng = np.random.default_rng(1)
    few = Samples(rng.uniform(0, 1, (3, 21, 3)), np.ones(3), np.zeros(3, bool), list("ABC"), [0, 1, 2])
    with pytest.raises(PersonalError, match="at least"):
        adapt(model, meta, few)


def test_windows_never_cross_takes():
    frames = np.arange(6, dtype=np.float32)[:, None]
    w = take_windows(frames, np.array([0, 0, 0, 1, 1, 1]), 3)
    np.testing.assert_array_equal(w[3, :, 0], [3, 3, 3])  # the second take's first frame, padded with itself
    np.testing.assert_array_equal(w[5, :, 0], [3, 4, 5])
    np.testing.assert_array_equal(w[2, :, 0], [0, 1, 2])


def test_a_shape_only_model_given_motion_answers_as_before(shipped):
    model, _ = shipped
    x = torch.randn(5, 8, N_FEATURES)
    moving = with_motion(model).eval()
    assert moving.motion and not model.motion
    torch.testing.assert_close(moving(x), model(x), atol=1e-5, rtol=1e-5)


def test_a_user_who_signs_two_letters_differently_is_read_after_adapting(shipped, webcam, swapped):
    """The K/V-swapped user: the shared model reads them wrong; after adapting it reads this user's held-out frames
    right, keeps a letter the user skipped, and the shared model is untouched."""
    model, meta = shipped
    samples, result, calls, state = swapped
    assert calls[-1] == (80, 80) and len(calls) == 80 and result.steps == 80
    assert result.before < 0.75 and result.after >= 0.95, (result.before, result.after)
    assert result.samples == len(samples) and result.classes == ["A", "B", "K", "L", "V", "Y"]
    assert result.held_out > 0 and not result.kept_shared
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k]), f"the shared model changed: {k}"
    # Later frames of the same recording, never calibrated on: the swapped letters and a skipped one (W).
    later = recorded(webcam, ["K", "V", "W"], per_class=60, start=200)
    windows = torch.as_tensor(take_windows(later.features(), later.takes, meta["window"]))
    with torch.inference_mode():
        pred = np.array(meta["classes"])[result.model.eval()(windows).argmax(-1).numpy()]
        shared_pred = np.array(meta["classes"])[model(windows).argmax(-1).numpy()]
    swapped = {"K": "V", "V": "K", "W": "W"}
    truth = np.array([swapped[c] for c in later.labels])
    for c in "KVW":
        mine = later.labels == c
        assert (pred[mine] == truth[mine]).mean() >= 0.8, (c, (pred[mine] == truth[mine]).mean())
    assert (shared_pred[later.labels == "W"] == "W").mean() - (pred[later.labels == "W"] == "W").mean() <= 0.1


def test_a_personal_model_saves_loads_and_learns_a_recorded_motion(shipped, webcam, tmp_path):
    """J is I's hand shape drawn as a motion: a user's J take (I-shaped frames whose wrist moves down and hooks)
    and their still I take are told apart after adapting, by the motion alone; the model saves as feature version
    2 and loads back giving the same answers."""
    model, meta = shipped
    i_frames = webcam.subset(webcam.y == "I")
    n = 24
    still = i_frames.X[:n]
    moving = i_frames.X[n:2 * n].copy()
    t = np.arange(n) % 8  # three strokes of 8 frames: down 0.05 of the image per frame, then a hook
    moving[..., 1] += (np.minimum(t, 5) * 0.05)[:, None]
    moving[..., 0] -= (np.maximum(t - 5, 0) * 0.04)[:, None]
    takes = np.repeat(np.arange(6), 8)  # J strokes are takes of their own (as the page records again and again)
    samples = Samples(np.concatenate([still, moving]), np.full(2 * n, 4 / 3, np.float32), np.zeros(2 * n, bool),
                      ["I"] * n + ["J"] * n, takes)
    result = adapt(model, meta, samples, steps=100, batch=32, replay_batch=32, holdout=0, max_seconds=None)
    loaded, loaded_meta = load_checkpoint(result.save(tmp_path / "me.pth"))
    assert loaded_meta["personal"]["samples"] == 2 * n
    assert loaded_meta["feature_version"] == FEATURE_VERSION == 2 and result.meta["feature_version"] == 2
    windows = torch.as_tensor(take_windows(samples.features(), takes, meta["window"]))
    with torch.inference_mode():
        torch.testing.assert_close(loaded(windows), result.model.eval()(windows), atol=1e-5, rtol=1e-5)
        pred = np.array(meta["classes"])[loaded(windows).argmax(-1).numpy()]
    moving_full = np.tile(t >= 3, 2)  # frames whose window already holds some of the stroke
    assert (pred[:n] == "I").mean() >= 0.9
    assert (pred[n:][moving_full[n:]] == "J").mean() >= 0.9


def test_a_busy_machine_ends_adaptation_on_time(shipped, webcam):
    model, meta = shipped
    result = adapt(model, meta, recorded(webcam, ["A", "B", "C"], per_class=10), steps=100_000, max_seconds=1.0)
    assert result.steps < 100_000 and result.seconds < 30


def test_the_calibration_protocol_never_tests_on_calibration_frames():
    """ml.calibration: Kaggle photos split by file number, ayuraj by camera view, recordings by frame order;
    the calibration part and the test part never share a frame."""
    from ml.calibration import calibration_parts, calibration_samples
    from ml.landmark_set import LandmarkSet
    rng = np.random.default_rng(3)

    def fake(paths, y):
        n = len(paths)
        return LandmarkSet(rng.uniform(0, 1, (n, 21, 3)), y, ["g"] * n, paths, ["Left"] * n, np.ones(n))

    kaggle = fake([f"x/A/A{k}.jpg" for k in (10, 2, 33, 4)], ["A"] * 4)
    pool, test = calibration_parts(kaggle, "kaggle")
    assert sorted(kaggle.path[pool["A"]]) == ["x/A/A2.jpg", "x/A/A4.jpg"] and test.sum() == 2
    views = [f"hand1_b_{v}_seg_{s}_cropped.jpeg" for v in ("top", "bot", "left", "dif", "right") for s in (1, 2)]
    ayuraj = fake(views, ["B"] * 10)
    pool, test = calibration_parts(ayuraj, "ayuraj-hand1")
    assert all(("_bot_" in p) or ("_dif_" in p) for p in ayuraj.path[pool["B"]]) and test.sum() == 6
    assert not np.isin(pool["B"], np.flatnonzero(test)).any()
    webcam = fake([f"w:{k}" for k in range(40)], ["C"] * 20 + ["D"] * 20)
    pool, test = calibration_parts(webcam, "asl_ai")
    assert list(pool["C"]) == list(range(10)) and test[10:20].all() and not test[:10].any()
    samples = calibration_samples(webcam, pool, 5, photos=False)
    assert len(samples) == 10 and list(samples.takes) == [0] * 5 + [1] * 5


def test_a_later_adaptation_keeps_the_better_of_the_new_and_the_current_personal_model(shipped, webcam, swapped):
    """The K/V-swapped user calibrated (their current personal model reads them), then practises (later frames of
    the same recording). A new model that reads the practice's held-back frames worse than the current one is not
    handed out: the current one comes back, unchanged; one that reads them better replaces it. The two are compared
    only on the held-back frames `fresh` marks (gathered since the current model)."""
    model, meta = shipped
    calibration, calibrated, _, _ = swapped
    practice = recorded(webcam, ["A", "B", "K", "L", "V", "Y"], start=100, labels=SWAP)
    practice.takes = practice.takes + 100  # takes of their own, after calibration's: each class's last is held back
    both = Samples.concat([calibration, practice])
    fresh = (np.arange(len(both)) >= len(calibration)) & (both.labels != "A")  # as if A's were older

    # One vanishing step: the new model reads the swapped K and V as the shared model does.
    worse = adapt(model, meta, both, steps=1, lr=1e-9, current=calibrated.model, fresh=fresh, max_seconds=None)
    assert worse.kept == "current" and not worse.kept_shared
    assert worse.compared["new"] < 0.8 < 0.95 <= worse.compared["current"], worse.compared
    assert worse.held_out == 120 and worse.compared["frames"] == 100  # practice's held-back takes, less A's
    for k, v in calibrated.model.state_dict().items():
        assert torch.equal(worse.model.state_dict()[k], v), f"the current model changed: {k}"

    # A current model that never learned the swap (the shared weights, as a kept_shared adaptation stores them).
    better = adapt(model, meta, both, steps=80, batch=32, replay_batch=32, max_seconds=None,
                   current=with_motion(model), fresh=fresh)
    assert better.kept == "new" and better.compared["new"] > better.compared["current"] + 0.2, better.compared
    assert better.after >= 0.95


def test_the_servers_adaptation_keeps_the_current_models_file_when_the_new_one_reads_worse(shipped, webcam, swapped,
                                                                                          tmp_path):
    """The server's adaptation subprocess (`python -m ml.personal`), in process, on the files of the folder that
    becomes the entry: given the user's current model (--current) and how many of the samples came after it
    (--fresh), a new model that reads those worse leaves model.pth the current file, byte for byte, says so in its
    result, and no copy of the current model stays in the folder."""
    import json

    from app.live.personal import CURRENT_FILE, MODEL_FILE, SAMPLES_FILE
    from ml.personal import main
    calibration, calibrated, _, _ = swapped
    practice = recorded(webcam, ["A", "B", "K", "L", "V", "Y"], start=100, labels=SWAP)
    practice.takes = practice.takes + 100
    Samples.concat([calibration, practice]).save(tmp_path / SAMPLES_FILE)
    calibrated.save(tmp_path / CURRENT_FILE)
    current = (tmp_path / CURRENT_FILE).read_bytes()
    # one vanishing step (--steps 1 at the default rate barely moves the shared weights)
    run = cli_in_process(main, "--checkpoint", CHECKPOINT, "--samples", tmp_path / SAMPLES_FILE, "--out",
                         tmp_path / MODEL_FILE, "--steps", 1, "--current", tmp_path / CURRENT_FILE,
                         "--fresh", len(practice))
    done = json.loads(run.stdout.strip().splitlines()[-1])["done"]
    assert done["kept"] == "current" and done["compared"]["frames"] == 120, done
    assert done["compared"]["new"] < done["compared"]["current"], done
    assert (tmp_path / MODEL_FILE).read_bytes() == current
    assert sorted(p.name for p in tmp_path.iterdir()) == [MODEL_FILE, SAMPLES_FILE]
