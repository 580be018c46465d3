"""The model registry: which checkpoints can go live, and which one is.

Ids are "shipped" (config model.checkpoint, the repository's model) and "job-<n>" (a finished training
job's instance/models/<n>/best_model.pth). Paths are never taken from a request: an id is validated
against that pattern and mapped to a path here, so no id can reach outside those folders. The active id
is kept in SQLite, so a restart brings the same model back.

In cluster mode (app.cluster.store) `blobs` is the shared store: a registered checkpoint is uploaded there, and a
server or worker that lacks a model's file fetches it into its own models folder on first use.
"""
from __future__ import annotations

import functools
import logging
import os
import re
import threading
from pathlib import Path

from app.admin.db import Database
from ml.checkpoint import CheckpointError, load_checkpoint
from ml.config import project_path
from ml.inference import Predictor

SHIPPED = "shipped"
MODEL_ID = re.compile(r"^(shipped|job-[1-9][0-9]{0,9})$")
ACTIVE_KEY = "active_model"
log = logging.getLogger(__name__)


class ModelError(ValueError):
    """A model id that is malformed (status 400), unknown (404), or a checkpoint that cannot load (422)."""

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status


class ModelRegistry:
    def __init__(self, db: Database, predictor: Predictor | None, shipped_checkpoint: str | Path,
                 models_dir: str | Path, blobs=None):
        self.db, self.predictor, self.blobs = db, predictor, blobs
        self.shipped_checkpoint = project_path(shipped_checkpoint)
        self.models_dir = Path(models_dir).resolve()

    def job_dir(self, job_id: int) -> Path:
        return self.models_dir / str(int(job_id))

    def path(self, model_id: str) -> Path:
        if not isinstance(model_id, str) or not MODEL_ID.match(model_id):
            raise ModelError(f"model id {model_id!r} is not 'shipped' or 'job-<number>'", 400)
        if model_id == SHIPPED:
            return self.shipped_checkpoint
        if self.db.model(model_id) is None:
            raise ModelError(f"no model {model_id}", 404)
        path = self.job_dir(int(model_id.removeprefix("job-"))) / "best_model.pth"
        if self.blobs is not None and not path.is_file():
            self._fetch(model_id, path)
        return path

    def register(self, job_id: int, metrics: dict) -> str:
        model_id = f"job-{int(job_id)}"
        path = self.job_dir(job_id) / "best_model.pth"
        if self.blobs is not None:  # before the record: a listed model always has its checkpoint
            self.blobs.put_blob(_blob_name(model_id), path.read_bytes())
        self.db.add_model(model_id, str(path), job_id, metrics)
        return model_id

    def _fetch(self, model_id: str, path: Path) -> None:
        data = self.blobs.get_blob(_blob_name(model_id))
        if data is None:
            return  # the caller finds no file and says so
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
        tmp.write_bytes(data)
        os.replace(tmp, path)  # atomic: a concurrent reader sees the whole file or none

    def active(self) -> str:
        return self.predictor.model_id

    def activate(self, model_id: str) -> dict:
        """Load fully, then swap between two batches; a bad checkpoint leaves the live model as it was."""
        path = self.path(model_id)
        try:
            self.predictor.swap(path, model_id=model_id)
        except CheckpointError as exc:
            raise ModelError(f"model {model_id} cannot be loaded, the live model is unchanged: {exc}", 422) from None
        self.db.set_setting(ACTIVE_KEY, model_id)
        return self.predictor.info()

    def restore(self) -> None:
        """At start-up: bring back the model that was active before the restart (the shipped one if it fails)."""
        model_id = self.db.get_setting(ACTIVE_KEY, SHIPPED)
        if model_id == self.predictor.model_id:
            return
        try:
            self.predictor.swap(self.path(model_id), model_id=model_id)
        except (ModelError, CheckpointError) as exc:
            log.error("active model %s not restored, serving %s: %s", model_id, self.predictor.model_id, exc)

    def list(self) -> list[dict]:
        active = self.active()
        card = self.shipped_checkpoint.with_name("model_card.md")
        shipped = {"id": SHIPPED, "job": None, "created_at": _mtime(self.shipped_checkpoint),
                   "metrics": {**_checkpoint_metrics(self.shipped_checkpoint, _mtime(self.shipped_checkpoint)),
                               **_card_metrics(card, _mtime(card))}}
        models = [shipped, *({k: m[k] for k in ("id", "job", "created_at", "metrics")} for m in self.db.models())]
        return [{**m, "active": m["id"] == active} for m in models]


# The model card's leave-one-signer-out mean: how the shipped model reads people it never saw (its validation
# accuracy is measured on held-back frames of the people it trained on, and reads ten points higher).
UNSEEN_MEAN = re.compile(r"^\| unseen-signer mean, all five \| ([0-9.]+) %", re.MULTILINE)


@functools.lru_cache(maxsize=2)
def _card_metrics(card: Path, mtime: float | None) -> dict:
    """{"unseen_signer_acc": fraction} from the shipped model's card, or {} when it says none."""
    try:
        found = UNSEEN_MEAN.search(card.read_text(encoding="utf-8"))
    except OSError:
        return {}
    return {"unseen_signer_acc": float(found.group(1)) / 100} if found else {}


def _blob_name(model_id: str) -> str:
    return f"checkpoints/{model_id}.pth"


def _mtime(path: Path) -> float | None:
    return path.stat().st_mtime if path.exists() else None


@functools.lru_cache(maxsize=4)
def _checkpoint_metrics(checkpoint: Path, mtime: float | None) -> dict:
    """The metrics ml.train stored in the checkpoint (cached per file version: the list is polled)."""
    try:
        metrics = load_checkpoint(checkpoint)[1].get("metrics")
    except CheckpointError:
        return {}
    return metrics if isinstance(metrics, dict) else {}
