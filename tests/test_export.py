"""ml.export: the ONNX model answers like the torch one (onnxruntime), for any batch size."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import torch

from ml.features import N_FEATURES
from ml.checkpoint import load_checkpoint
from ml.config import ROOT
from ml.export import export_onnx, main
from tests.conftest import HANG_GUARD_S, SHIPPED_CHECKPOINT, cli_in_process


def test_onnx_matches_torch_within_1e4_for_any_batch(tmp_path):
    import onnxruntime as ort

    path = export_onnx(SHIPPED_CHECKPOINT, tmp_path / "model.onnx")
    model, meta = load_checkpoint(SHIPPED_CHECKPOINT)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(3)
    for batch in (1, 7):
        x = rng.normal(0, 1, (batch, meta["window"], N_FEATURES)).astype(np.float32)
        with torch.inference_mode():
            expected = model(torch.from_numpy(x)).numpy()
        got = session.run(["logits"], {"windows": x})[0]
        assert got.shape == (batch, 29)
        np.testing.assert_allclose(got, expected, atol=1e-4)


def test_cli_checks_parity_and_rejects_bad_checkpoints(tmp_path):
    ok = subprocess.run([sys.executable, "-m", "ml.export", "--checkpoint", SHIPPED_CHECKPOINT, "--out",
                         tmp_path / "m.onnx"], cwd=ROOT, capture_output=True, text=True, timeout=HANG_GUARD_S)
    assert ok.returncode == 0, ok.stderr
    line = json.loads(ok.stdout)
    assert line["ok"] and line["max_abs_diff"] <= 1e-4
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"\x00" * 100)
    failed = cli_in_process(main, "--checkpoint", bad, "--out", tmp_path / "b.onnx")
    assert failed.returncode == 2 and "not a readable checkpoint" in failed.stderr
    assert not (tmp_path / "b.onnx").exists()


def test_the_predictor_reads_the_shared_model_with_onnx_runtime_as_torch_does():
    """model.runtime onnxruntime: the server's Predictor runs the exported graph (one window cost ~0.2 ms of CPU
    against ~0.6-1.3 ms in torch) and must answer as torch does, by predict() and through its worker."""
    from ml.inference import Predictor

    by_torch = Predictor(SHIPPED_CHECKPOINT, "cpu", runtime="torch")
    by_onnx = Predictor(SHIPPED_CHECKPOINT, "cpu", runtime="onnxruntime")
    try:
        assert (by_torch.info()["runtime"], by_onnx.info()["runtime"]) == ("torch", "onnxruntime")
        x = np.random.default_rng(5).normal(0, 1, (6, by_onnx.window, N_FEATURES)).astype(np.float32)
        expected = by_torch.predict(x)
        assert np.abs(by_onnx.predict(x) - expected).max() < 1e-5
        # through the worker, a short window fitted to the model's T as torch's is
        got = [by_onnx.submit(w[-3:]).result(timeout=30) for w in x]
        want = [by_torch.submit(w[-3:]).result(timeout=30) for w in x]
        assert np.abs(np.array(got) - np.array(want)).max() < 1e-5
        assert [p.argmax() for p in got] == [p.argmax() for p in want]
    finally:
        by_torch.close()
        by_onnx.close()
