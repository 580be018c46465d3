"""ml.train on tiny synthetic data: the CLI contract (JSON lines, files, errors), learning, determinism."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from ml.features import N_FEATURES
from ml.checkpoint import load_checkpoint, save_checkpoint
from ml.config import ROOT
from ml.model import CLASSES, SignGRU
from ml.train import main, parse_args, run
from tests.conftest import HANG_GUARD_S, cli_in_process
from tests.synthetic import synthetic_set, write_synthetic


def train_cli(*args):
    return subprocess.run([sys.executable, "-m", "ml.train", *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, timeout=HANG_GUARD_S)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """29 classes x 10 samples, one group: the admin's recorded-samples case."""
    return write_synthetic(tmp_path_factory.mktemp("data") / "tiny.npz")


def test_cli_prints_only_json_lines_and_writes_loadable_checkpoints(tiny, tmp_path):
    out = tmp_path / "run"
    # One torch thread, as the in-process runs below: two (the default) fight the other test process for 2 cores.
    result = train_cli("--datasets", tiny, "--epochs", 2, "--lr", 0.01, "--batch-size", 32, "--out", out,
                       "--seed", 1, "--window", 4, "--checkpoint-every", 1, "--threads", 1)
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    epochs, done = lines[:-1], lines[-1]
    assert [e["epoch"] for e in epochs] == [1, 2] and all(e["event"] == "epoch" and e["epochs"] == 2 for e in epochs)
    for e in epochs:
        assert set(e) == {"event", "epoch", "epochs", "train_loss", "val_loss", "train_acc", "val_acc", "lr", "seconds"}
    assert done["event"] == "done" and done["checkpoint"] == str(out / "best_model.pth")
    model, meta = load_checkpoint(done["checkpoint"])
    assert meta["classes"] == CLASSES and meta["window"] == 4
    assert meta["metrics"]["val_samples"] == 29 * 2  # the last 15 % of each class, rounded up
    assert meta["train_config"]["lr"] == 0.01
    assert model(torch.zeros(3, 4, N_FEATURES)).shape == (3, 29)
    for epoch in (1, 2):
        load_checkpoint(out / f"checkpoint_epoch_{epoch:03d}.pth")
    card = json.loads((out / "model_card.json").read_text())
    assert card["data"]["groups"]["synthetic"]["classes"] == 29 and card["metrics"]["epochs_run"] == 2


def test_training_reduces_loss_and_is_deterministic(tmp_path):
    data = synthetic_set(per_class=12, classes=CLASSES[:8]).save(tmp_path / "eight.npz")
    histories = []
    for name in ("a", "b"):
        lines = []
        run(parse_args(["--datasets", str(data), "--epochs", "8", "--lr", "0.01", "--batch-size", "16",
                        "--window", "3", "--seed", "5", "--threads", "1", "--out", str(tmp_path / name)]),
            emit=lines.append)
        histories.append([json.loads(line) for line in lines])
    first, last = histories[0][0], histories[0][-1]
    assert last["train_loss"] < 0.7 * first["train_loss"] and last["val_acc"] >= 0.9
    strip = [[{k: v for k, v in e.items() if k != "seconds"} for e in h] for h in histories]
    assert strip[0] == strip[1]


def test_fine_tuning_from_a_base_and_holding_out_a_group(tmp_path):
    data = synthetic_set(per_class=6, classes=CLASSES[:5], groups=("p1", "p2", "p3")).save(tmp_path / "people.npz")
    base = tmp_path / "base.pth"
    save_checkpoint(base, SignGRU(hidden=16, layers=1), classes=CLASSES, window=3)
    metrics = run(parse_args(["--datasets", str(data), "--epochs", "2", "--base", str(base), "--val-groups", "p2",
                              "--test-groups", "p3", "--threads", "1", "--out", str(tmp_path / "ft")]),
                  emit=lambda line: None)
    assert metrics["train_samples"] == 30 and metrics["val_samples"] == 30 and metrics["test_samples"] == 30
    assert set(metrics["test_per_group"]) == {"p3"}
    model, meta = load_checkpoint(tmp_path / "ft" / "best_model.pth")
    assert meta["window"] == 3 and model.config["hidden"] == 16  # the base's shape and window


def test_cli_errors_are_clear(tiny, tmp_path):
    out = tmp_path / "x"
    absent = cli_in_process(main, "--datasets", tmp_path / "absent.npz", "--epochs", 1, "--out", out)
    assert absent.returncode == 2 and "no such landmark set" in absent.stderr and absent.stdout == ""
    unknown = cli_in_process(main, "--datasets", "imagenet", "--epochs", 1, "--out", out)
    assert unknown.returncode == 2 and "unknown data set" in unknown.stderr
    wrong = tmp_path / "wrong.pth"
    save_checkpoint(wrong, SignGRU(n_classes=10), classes=CLASSES[:10], window=8)
    bad_base = cli_in_process(main, "--datasets", tiny, "--epochs", 1, "--base", wrong, "--out", out)
    assert bad_base.returncode == 2 and "classes" in bad_base.stderr
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(b"not a checkpoint")
    bad = cli_in_process(main, "--datasets", tiny, "--epochs", 1, "--base", corrupt, "--out", out)
    assert bad.returncode == 2 and "not a readable checkpoint" in bad.stderr
    foreign = synthetic_set(per_class=2, classes=["A", "hello"]).save(tmp_path / "foreign.npz")
    labels = cli_in_process(main, "--datasets", foreign, "--epochs", 1, "--out", out)
    assert labels.returncode == 2 and "unknown classes ['hello']" in labels.stderr
    zero = cli_in_process(main, "--datasets", tiny, "--epochs", 0, "--out", out)
    assert zero.returncode == 2 and "--epochs" in zero.stderr
    assert not (out / "best_model.pth").exists()


def test_balanced_draws_weigh_every_signer_and_class_the_same():
    import numpy as np

    from ml.train import epoch_weights

    groups = np.array(["big"] * 90 + ["small"] * 10)
    labels = np.array(["A"] * 60 + ["B"] * 30 + ["A"] * 5 + ["B"] * 5)
    assert epoch_weights(groups, labels, "none") is None
    by_signer = epoch_weights(groups, labels, "signer")
    assert np.isclose(by_signer[groups == "small"].sum(), 0.5) and np.isclose(by_signer.sum(), 1)
    by_class = epoch_weights(groups, labels, "signer-class")
    for g in ("big", "small"):
        for c in ("A", "B"):
            assert np.isclose(by_class[(groups == g) & (labels == c)].sum(), 0.25)
