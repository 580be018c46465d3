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


def same_shape(model: nn.Module) -> tuple | None:
    """What models must share to be read in one stacked pass (stacked_forward); None: a model only read alone."""
    if type(model) is not SignGRU:
        return None
    return tuple(v for k, v in sorted(model.config.items()) if k != "dropout")


def stack_weights(models: list[SignGRU]) -> dict[str, torch.Tensor]:
    """Each parameter of `models` (of one same_shape) stacked: name -> (M, ...), what stacked_forward reads."""
    states = [m.state_dict() for m in models]
    return {name: torch.stack([state[name] for state in states]) for name in states[0]}


def stacked_forward(model: SignGRU, weights: dict[str, torch.Tensor], x: torch.Tensor,
                    which: torch.Tensor | None = None) -> torch.Tensor:
    """(B, T, n_features) windows -> (B, n_classes) logits, window b read by the weights of model which[b]
    (default: model b) in one batched pass: nn.GRU's equations (eval mode: no dropout) written out over each
    window's own weights, so that 8 users' personal models cost one pass rather than 8 (torch.func.vmap has no
    batching rule for the GRU). `weights`: stack_weights of models of `model`'s same_shape."""
    def w(name: str) -> torch.Tensor:  # (B, ...): each window's copy of one parameter
        return weights[name] if which is None else weights[name][which]

    out = window_inputs(x, model.motion)
    for layer in range(model.gru.num_layers):
        w_ih, w_hh = w(f"gru.weight_ih_l{layer}").transpose(1, 2), w(f"gru.weight_hh_l{layer}").transpose(1, 2)
        b_ih, b_hh = w(f"gru.bias_ih_l{layer}")[:, None], w(f"gru.bias_hh_l{layer}")[:, None]  # (B, 1, 3H)
        gates_x = torch.baddbmm(b_ih, out, w_ih).unbind(1)  # the input's part, all steps at once
        h = out.new_zeros(len(x), 1, model.gru.hidden_size)
        steps = []
        for gx in gates_x:
            r_x, z_x, n_x = gx.chunk(3, dim=-1)
            r_h, z_h, n_h = torch.baddbmm(b_hh, h, w_hh)[:, 0].chunk(3, dim=-1)
            r, z = torch.sigmoid(r_x + r_h), torch.sigmoid(z_x + z_h)
            n = torch.tanh(n_x + r * n_h)  # n_h holds b_hn: nn.GRU's reset gate scales it too
            h = ((1 - z) * n + z * h[:, 0])[:, None]
            steps.append(h)
        out = torch.cat(steps, dim=1)
    # The head: Dropout, Linear, ReLU, Linear.
    h = torch.relu(torch.baddbmm(w("head.1.bias")[:, None], out[:, -1:], w("head.1.weight").transpose(1, 2)))
    return torch.baddbmm(w("head.3.bias")[:, None], h, w("head.3.weight").transpose(1, 2))[:, 0]
