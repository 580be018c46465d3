"""The classifier: a small GRU over a window of T hand-feature vectors (the seed's shape)."""
from __future__ import annotations

import torch
from torch import nn

from ml.features import N_FEATURES

CLASSES = [*"ABCDEFGHIJKLMNOPQRSTUVWXYZ", "del", "nothing", "space"]


class SignGRU(nn.Module):
    def __init__(self, n_features: int = N_FEATURES, hidden: int = 128, layers: int = 2, dropout: float = 0.3,
                 n_classes: int = len(CLASSES)):
        super().__init__()
        self.config = dict(n_features=n_features, hidden=hidden, layers=layers, dropout=dropout, n_classes=n_classes)
        self.gru = nn.GRU(n_features, hidden, num_layers=layers, batch_first=True,
                          dropout=dropout if layers > 1 else 0.0)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(hidden, hidden // 2), nn.ReLU(),
                                  nn.Linear(hidden // 2, n_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, n_features) -> (B, n_classes) logits, read from the last step."""
        out, _ = self.gru(x)
        return self.head(out[:, -1])


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
