"""Predictor: one worker thread owns the model and batches every waiting window into one forward pass.

Callers on any thread `submit(window)` and get a Future of class probabilities. `swap(path)` loads a new
checkpoint fully first (a bad file raises and changes nothing), then replaces the model between two batches.
"""
from __future__ import annotations

import queue
import threading
from concurrent.futures import Future
from pathlib import Path

import numpy as np
import torch

from ml.checkpoint import load_checkpoint, resolve_device

_STOP = object()


class Predictor:
    def __init__(self, checkpoint: str | Path, device: str = "auto", max_batch: int = 64,
                 model_id: str | None = None):
        self.device = resolve_device(device)
        self.max_batch = max_batch
        self._lock = threading.Lock()  # guards the (model, meta, model_id) triple
        self._model, self.meta = load_checkpoint(checkpoint, self.device)
        self.model_id = model_id or Path(checkpoint).stem
        self._queue: queue.Queue = queue.Queue()
        self._worker = threading.Thread(target=self._run, name="predictor", daemon=True)
        self._worker.start()

    @property
    def classes(self) -> list[str]:
        return self.meta["classes"]

    @property
    def window(self) -> int:
        return self.meta["window"]

    def info(self) -> dict:
        return {"model": self.model_id, "classes": self.classes, "window": self.window,
                "device": self.device.type}

    def predict(self, windows: np.ndarray) -> np.ndarray:
        """(B, T, 63) -> (B, n_classes) probabilities, on the calling thread."""
        with self._lock:
            model = self._model
        with torch.inference_mode():
            x = torch.as_tensor(np.asarray(windows, dtype=np.float32), device=self.device)
            return torch.softmax(model(x).float(), dim=-1).cpu().numpy()

    def submit(self, window: np.ndarray) -> Future:
        """One (t, 63) window (any t >= 1: fitted to the model's T) -> Future of (n_classes,) probabilities."""
        future: Future = Future()
        self._queue.put((np.asarray(window, dtype=np.float32), future))
        return future

    def swap(self, checkpoint: str | Path, model_id: str | None = None) -> None:
        model, meta = load_checkpoint(checkpoint, self.device)  # raises CheckpointError; nothing changes
        with self._lock:
            self._model, self.meta = model, meta
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
            while len(batch) < self.max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    self._queue.put(_STOP)
                    break
                batch.append(item)
            futures = [f for _, f in batch if f.set_running_or_notify_cancel()]
            windows = [w for w, f in batch if f.running()]
            if not futures:
                continue
            try:
                probs = self.predict(np.stack([fit_window(w, self.window) for w in windows]))
                for future, p in zip(futures, probs):
                    future.set_result(p)
            except Exception as exc:  # a bad batch fails its callers, never the worker
                for future in futures:
                    future.set_exception(exc)


def fit_window(window: np.ndarray, length: int) -> np.ndarray:
    """The last `length` frames; a short window is padded at the front with its first frame."""
    if window.ndim != 2 or len(window) == 0:
        raise ValueError(f"window must be (t >= 1, features), got {window.shape}")
    if len(window) >= length:
        return window[-length:]
    return np.concatenate([np.repeat(window[:1], length - len(window), axis=0), window])
