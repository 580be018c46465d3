"""The classifier: a small GRU over a window of T hand-feature vectors (the seed's shape)."""
from __future__ import annotations

import torch
from torch import nn

from ml.features import N_FEATURES, N_SHAPE

CLASSES = [*"ABCDEFGHIJKLMNOPQRSTUVWXYZ", "del", "nothing", "space"]
MAX_MOTION = 8.0  # palm sizes: a wrist path longer than this is a tracking jump, not a letter


def window_inputs(x: torch.Tensor, motion: bool) -> torch.Tensor:
    """(B, T, 67) feature windows -> (B, T, 63 [+ 3]) GRU inputs: the shape features, and with `motion` the
    wrist's displacement from its place in the last frame, in the window's mean palm size. Computed here, per
    window, so that training, the Predictor and the live session cannot disagree."""
    shape = x[..., :N_SHAPE]
    if not motion:
        return shape
    wrist, palm = x[..., N_SHAPE:N_SHAPE + 3], x[..., N_SHAPE + 3:N_SHAPE + 4]
    path = (wrist - wrist[:, -1:]) / palm.mean(dim=1, keepdim=True).clamp_min(1e-3)
    return torch.cat([shape, path.clamp(-MAX_MOTION, MAX_MOTION)], dim=-1)


class SignGRU(nn.Module):
    """n_features: the per-frame vector it reads (67; a feature-version-1 model: 63). motion: whether it sees
    the wrist's path over the window (needs the 67)."""

    def __init__(self, n_features: int = N_FEATURES, hidden: int = 128, layers: int = 2, dropout: float = 0.3,
                 n_classes: int = len(CLASSES), motion: bool = False):
        super().__init__()
        if motion and n_features < N_FEATURES:
            raise ValueError(f"a motion model needs {N_FEATURES} features per frame, not {n_features}")
        self.config = dict(n_features=n_features, hidden=hidden, layers=layers, dropout=dropout, n_classes=n_classes,
                           motion=motion)
        self.motion = motion
        self.gru = nn.GRU(N_SHAPE + (3 if motion else 0), hidden, num_layers=layers, batch_first=True,
                          dropout=dropout if layers > 1 else 0.0)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(hidden, hidden // 2), nn.ReLU(),
                                  nn.Linear(hidden // 2, n_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, n_features) -> (B, n_classes) logits, read from the last step."""
        out, _ = self.gru(window_inputs(x, self.motion))
        return self.head(out[:, -1])


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
