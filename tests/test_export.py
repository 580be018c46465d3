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

