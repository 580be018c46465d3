"""Checkpoints: written atomically (temp file + rename), read with weights_only=True and validated."""
from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path

import torch

from ml.features import FEATURE_VERSION, N_FEATURES, N_SHAPE
from ml.model import SignGRU

REQUIRED_KEYS = ("model_state_dict", "classes", "feature_version", "window", "model_config")
# Feature version -> the per-frame features such a model reads. Version 1 (63 shape features, no motion) reads the
# first 63 of today's vector, so its checkpoints still load.
FEATURES_READ = {1: N_SHAPE, FEATURE_VERSION: N_FEATURES}


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: missing, corrupt, or not a Sign2Sound model."""


def save_checkpoint(path: str | os.PathLike, model: SignGRU, *, classes: list[str], window: int,
                    **extra) -> Path:
    """Write model + everything needed to use it. Never leaves a half-written file at `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    version = 1 if model.config["n_features"] == N_SHAPE else FEATURE_VERSION
    payload = dict(model_state_dict=state, classes=list(classes), feature_version=version,
                   window=int(window), model_config=dict(model.config), **extra)
    buffer = io.BytesIO()  # serialise first, so a failing disk surfaces as a plain OSError from write()
    torch.save(payload, buffer)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(buffer.getbuffer())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[SignGRU, dict]:
    """(model in eval mode on `device`, metadata). CheckpointError says what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many kinds for a truncated or foreign file
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(exc).__name__}: {exc})") from None
    if not isinstance(payload, dict) or any(k not in payload for k in REQUIRED_KEYS):
        raise CheckpointError(f"{path}: not a Sign2Sound checkpoint (needs {', '.join(REQUIRED_KEYS)})")
    version = payload["feature_version"]
    if version not in FEATURES_READ:
        raise CheckpointError(f"{path}: feature version {version}, this code reads "
                              f"{', '.join(map(str, FEATURES_READ))}")
    config = dict(payload["model_config"])
    if config.get("n_features") != FEATURES_READ[version] or config.get("n_classes") != len(payload["classes"]):
        raise CheckpointError(f"{path}: model shape {config} does not fit {FEATURES_READ[version]} features and "
                              f"{len(payload['classes'])} classes")
    try:
        model = SignGRU(**config)
        model.load_state_dict(payload["model_state_dict"])
    except (TypeError, RuntimeError) as exc:
        raise CheckpointError(f"{path}: weights do not fit the model ({exc})") from None
    meta = {k: v for k, v in payload.items() if k != "model_state_dict"}
    return model.to(device).eval(), meta


def resolve_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)
