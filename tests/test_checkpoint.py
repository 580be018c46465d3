"""ml.checkpoint: atomic writes, a round trip that predicts the same, and clear errors for bad files."""
from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from ml.features import N_FEATURES
from ml.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from ml.inference import Predictor
from ml.model import CLASSES, SignGRU


def saved(path, **model_options):
    torch.manual_seed(0)
    model = SignGRU(**model_options).eval()
    save_checkpoint(path, model, classes=CLASSES[:model.config["n_classes"]], window=5, metrics={"val_acc": 0.5})
    return model


def test_round_trip_predicts_the_same_and_keeps_metadata(tmp_path):
    path = tmp_path / "m.pth"
    model = saved(path, hidden=32)
    loaded, meta = load_checkpoint(path)
    x = torch.randn(4, 5, N_FEATURES)
    with torch.inference_mode():
        torch.testing.assert_close(loaded(x), model(x))
    assert meta["classes"] == CLASSES and meta["window"] == 5 and meta["metrics"] == {"val_acc": 0.5}
    assert not loaded.training
    assert [p.name for p in tmp_path.iterdir()] == ["m.pth"]  # no temp file left behind


def test_a_failed_write_leaves_the_old_file_and_no_temp_file(tmp_path):
    path = tmp_path / "m.pth"
    saved(path)
    before = path.read_bytes()
    with pytest.raises(Exception):
        save_checkpoint(path, SignGRU(), classes=CLASSES, window=5, note=lambda: None)  # cannot be pickled
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.pth"]


@pytest.mark.parametrize("content, message", [(b"", "not a readable checkpoint"),
                                              (b"garbage" * 10, "not a readable checkpoint")])
def test_corrupt_files_raise_checkpoint_error(tmp_path, content, message):
    path = tmp_path / "bad.pth"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(path)


def test_wrong_shapes_and_foreign_files_are_refused(tmp_path):
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "absent.pth")
    torch.save({"state": 1}, tmp_path / "foreign.pth")
    with pytest.raises(CheckpointError, match="not a Sign2Sound checkpoint"):
        load_checkpoint(tmp_path / "foreign.pth")
    saved(tmp_path / "features.pth", n_features=42)
    with pytest.raises(CheckpointError, match="does not fit"):
        load_checkpoint(tmp_path / "features.pth")
    # Metadata that lies about the weights: hidden 64 declared, 128 stored.
    model = SignGRU()
    payload = torch.load(saved(tmp_path / "ok.pth") and tmp_path / "ok.pth", weights_only=True)
    payload["model_config"] = dict(model.config, hidden=64)
    torch.save(payload, tmp_path / "lying.pth")
    with pytest.raises(CheckpointError, match="weights do not fit"):
        load_checkpoint(tmp_path / "lying.pth")


def test_predictor_swap_keeps_the_old_model_when_the_new_file_is_bad(tmp_path):
    saved(tmp_path / "good.pth")
    (tmp_path / "bad.pth").write_bytes(b"junk")
    predictor = Predictor(tmp_path / "good.pth", device="cpu")
    try:
        before = predictor.submit(np.ones((5, N_FEATURES), np.float32)).result(timeout=10)
        with pytest.raises(CheckpointError):
            predictor.swap(tmp_path / "bad.pth")
        assert predictor.model_id == "good"
        np.testing.assert_allclose(predictor.submit(np.ones((5, N_FEATURES), np.float32)).result(timeout=10), before, atol=1e-6)
    finally:
        predictor.close()


@pytest.mark.parametrize("wait_s, passes", [(0.0, 2), (0.5, 1)])
def test_predictor_batch_wait_gathers_a_window_sent_just_after_into_the_same_pass(tmp_path, wait_s, passes):
    saved(tmp_path / "good.pth")
    batches = []

    def compute(fn, models, stacked, x, which):  # counts the forward passes and their sizes
        batches.append(len(x))
        return fn(models, stacked, x, which)

    predictor = Predictor(tmp_path / "good.pth", device="cpu", compute=compute, batch_wait_s=wait_s)
    try:
        first = predictor.submit(np.ones((5, N_FEATURES), np.float32))
        time.sleep(0.1)  # long enough for a worker that does not wait to have run the first window alone
        second = predictor.submit(np.zeros((5, N_FEATURES), np.float32))
        first.result(timeout=10), second.result(timeout=10)
        assert len(batches) == passes and sum(batches) == 2
    finally:
        predictor.close()
