"""Predictor: one worker thread owns the models and batches every waiting window into as few forward passes
as there are shapes of model among them.

Callers on any thread `submit(window)` and get a Future of class probabilities; `submit(window, personal)`
reads that window with a user's personal model instead of the shared one. The worker takes everything
waiting, groups it by the shape of its model and runs one forward pass per group: 8 clients with 8 personal
models of one architecture cost one pass over their stacked weights (ml.model.stacked_forward), not 8 passes.
`swap(path)` loads a new shared checkpoint fully first (a bad file raises and changes nothing), then replaces the
model between two batches. `compute` runs each forward pass: the server passes one that takes it off a gevent loop
to a native thread (torch releases the GIL), so the loop goes on reading frames meanwhile. `batch_wait_s`: how long
the worker lets windows gather after the first before it runs them; worth it only where waiting is free (a green
worker: the loop reads other clients' frames meanwhile), since a one-window pass costs about as much as four.
"""
from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ml.checkpoint import load_checkpoint, resolve_device
from ml.model import same_shape, stack_weights, stacked_forward

_STOP = object()


class ReadsCheckpoint:
    """What a reader of windows needs from its checkpoint's meta."""
    meta: dict

    @property
    def classes(self) -> list[str]:
        return self.meta["classes"]

    @property
    def window(self) -> int:
        return self.meta["window"]


@dataclass(frozen=True, eq=False)  # compared by identity: one loaded model, one group in a batch
class PersonalModel(ReadsCheckpoint):
    """One user's model as loaded for reading (ml.checkpoint.load_checkpoint's model and meta)."""
    model: torch.nn.Module
    meta: dict


class Predictor(ReadsCheckpoint):
    def __init__(self, checkpoint: str | Path, device: str = "auto", max_batch: int = 64,
                 model_id: str | None = None, compute: Callable = lambda fn, *args: fn(*args),
                 batch_wait_s: float = 0.0):
        self.device = resolve_device(device)
        self.max_batch = max_batch
        self.batch_wait_s = batch_wait_s
        self._compute = compute
        self._lock = threading.Lock()  # guards the (model, meta, model_id) triple
        self._model, self.meta = load_checkpoint(checkpoint, self.device)
        self.checkpoint = Path(checkpoint)  # what personal models are adapted from
        self.model_id = model_id or Path(checkpoint).stem
        self._queue: queue.Queue = queue.Queue()
        self._stacks: dict[tuple, tuple[list, dict]] = {}  # the worker's: stacked weights of recent sets of models
        self._worker = threading.Thread(target=self._run, name="predictor", daemon=True)
        self._worker.start()

    def info(self) -> dict:
        return {"model": self.model_id, "classes": self.classes, "window": self.window,
                "device": self.device.type}

    def predict(self, windows: np.ndarray, model: torch.nn.Module | None = None) -> np.ndarray:
        """(B, T, 63) -> (B, n_classes) probabilities, on the calling thread (the shared model by default)."""
        if model is None:
            with self._lock:
                model = self._model
        with torch.inference_mode():
            x = torch.as_tensor(np.asarray(windows, dtype=np.float32), device=self.device)
            return torch.softmax(model(x).float(), dim=-1).cpu().numpy()

    def submit(self, window: np.ndarray, personal: PersonalModel | None = None) -> Future:
        """One (t, 63) window (any t >= 1: fitted to the model's T) -> Future of (n_classes,) probabilities,
        read by `personal` when given (its classes), else by the shared model."""
        future: Future = Future()
        self._queue.put((np.asarray(window, dtype=np.float32), personal, future))
        return future

    def swap(self, checkpoint: str | Path, model_id: str | None = None) -> None:
        model, meta = load_checkpoint(checkpoint, self.device)  # raises CheckpointError; nothing changes
        with self._lock:
            self._model, self.meta, self.checkpoint = model, meta, Path(checkpoint)
            self.model_id = model_id or Path(checkpoint).stem

    def close(self) -> None:
        self._queue.put(_STOP)
        self._worker.join(timeout=5)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            batch = [item]
            if self.batch_wait_s:
                time.sleep(self.batch_wait_s)
            while len(batch) < self.max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    self._queue.put(_STOP)
                    break
                batch.append(item)
            # One forward pass per shape of model among the waiting windows: the shared model's, and all personal
            # models of one architecture together (stacked_forward). Each window is fitted to its model's T.
            with self._lock:
                shared, shared_window = self._model, self.window
            groups: dict[tuple, list] = {}
            for window, personal, future in batch:
                if future.set_running_or_notify_cancel():
                    model, length = (personal.model, personal.window) if personal else (shared, shared_window)
                    groups.setdefault((same_shape(model) or id(model), length), []).append((window, model, future))
            for (_, length), items in groups.items():
                self._forward(items, length)

    def _forward(self, items: list, length: int) -> None:
        try:
            x = torch.as_tensor(np.stack([fit_window(w, length) for w, _, _ in items]), device=self.device)
            models = list({id(m): m for _, m, _ in items}.values())
            which = None if len(models) in (1, len(items)) else torch.tensor(
                [models.index(m) for _, m, _ in items], device=self.device)
            stacked = self._stacked(models) if len(models) > 1 else None
            probs = self._compute(self._probabilities, models, stacked, x, which)
            for (_, _, future), p in zip(items, probs):
                future.set_result(p)
        except Exception as exc:  # a bad batch fails its callers, never the worker
            for _, _, future in items:
                future.set_exception(exc)

    @staticmethod
    def _probabilities(models: list, stacked: dict | None, x: torch.Tensor, which) -> np.ndarray:
        """One forward pass (pure torch, no lock of this class: it may run on another thread)."""
        with torch.inference_mode():
            logits = models[0](x) if stacked is None else stacked_forward(models[0], stacked, x, which)
            return torch.softmax(logits.float(), dim=-1).cpu().numpy()

    def _stacked(self, models: list) -> dict:
        """stack_weights(models), kept for the next wake-up with the same models: stacking costs more than the
        pass it feeds (docs/PERFORMANCE.md). A model's weights are ~0.7 MB, so the sets kept are few."""
        key = tuple(map(id, models))
        if key not in self._stacks:
            if len(self._stacks) >= 16:  # bounded: the oldest set goes (dicts keep insertion order)
                del self._stacks[next(iter(self._stacks))]
            self._stacks[key] = (models, stack_weights(models))  # holding the models keeps their ids unique
        return self._stacks[key][1]


def fit_window(window: np.ndarray, length: int) -> np.ndarray:
    """The last `length` frames; a short window is padded at the front with its first frame."""
    if window.ndim != 2 or len(window) == 0:
        raise ValueError(f"window must be (t >= 1, features), got {window.shape}")
    if len(window) >= length:
        return window[-length:]
    return np.concatenate([np.repeat(window[:1], length - len(window), axis=0), window])
