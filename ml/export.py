"""ONNX export of a checkpoint, checked against the torch model with onnxruntime.

    python -m ml.export --checkpoint PATH --out model.onnx [--tolerance 1e-4]

Input "windows" (batch, T, 67) float32 (ml.features) -> output "logits" (batch, 29); the batch size is dynamic.
Exit code 2 with a message for a bad checkpoint, 1 when the outputs differ by more than the tolerance.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import sys
import warnings
from pathlib import Path

import numpy as np
import torch

from ml.checkpoint import CheckpointError, load_checkpoint
from ml.features import N_FEATURES


def export_onnx(checkpoint: str | os.PathLike, out: str | os.PathLike, opset: int = 17) -> Path:
    model, meta = load_checkpoint(checkpoint)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_bytes(onnx_bytes(model, meta["window"], opset=opset))
    os.replace(tmp, out)
    return out


def onnx_bytes(model: torch.nn.Module, window: int, opset: int = 17) -> bytes:
    """The model as an ONNX graph: "windows" (batch, window, 67) -> "logits" (batch, classes)."""
    example = torch.zeros(2, window, N_FEATURES)
    buffer = io.BytesIO()
    # The TorchScript exporter: it handles nn.GRU directly and needs no onnxscript. Its warnings about tracing
    # and the batch size are moot here: parity is checked at other batch sizes (max_difference, the tests).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (example,), buffer, dynamo=False, input_names=["windows"],
                          output_names=["logits"], dynamic_axes={"windows": {0: "batch"}, "logits": {0: "batch"}},
                          opset_version=opset)
    return buffer.getvalue()


def max_difference(checkpoint: str | os.PathLike, onnx_path: str | os.PathLike, batch: int = 16,
                   seed: int = 0) -> float:
    """Largest absolute logit difference between torch and onnxruntime on random windows."""
    import onnxruntime as ort

    model, meta = load_checkpoint(checkpoint)
    x = np.random.default_rng(seed).normal(0, 1, (batch, meta["window"], N_FEATURES)).astype(np.float32)
    with torch.inference_mode():
        expected = model(torch.from_numpy(x)).numpy()
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    got = session.run(["logits"], {"windows": x})[0]
    return float(np.abs(got - expected).max())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ml.export", description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--out", required=True, help="ONNX file to write")
    parser.add_argument("--tolerance", type=float, default=1e-4)
    parser.add_argument("--opset", type=int, default=17)
    args = parser.parse_args(argv)
    try:
        out = export_onnx(args.checkpoint, args.out, args.opset)
    except CheckpointError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    diff = max_difference(args.checkpoint, out)
    print(json.dumps({"onnx": str(out), "max_abs_diff": diff, "tolerance": args.tolerance, "ok": diff <= args.tolerance}))
    if diff > args.tolerance:
        print(f"error: ONNX outputs differ from torch by {diff:g} (> {args.tolerance:g})", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
