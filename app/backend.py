"""Where a server keeps the models, training jobs, data sets and shared files that the admin, recording and the
users' personal models work on. One server: SQLite in its instance folder and jobs in its own process. Cluster mode
(`message_queue` set): the shared Redis store, RQ workers for the jobs, and models kept in sync between servers
(app.cluster, docs/DEPLOYMENT.md). Chosen here, once, so that no feature module starts the cluster."""
from __future__ import annotations

from flask import Flask

from app.admin.datasets import DatasetStore
from app.admin.db import Database
from app.admin.jobs import JobRunner
from app.admin.models import ModelRegistry


def init_app(app: Flask, predictor, emit) -> None:
    """Sets app.extensions' admin_db, models (the registry, its active model restored), datasets, jobs (started;
    jobs a previous server left running are marked interrupted) and blobs (the shared store's files in cluster mode,
    None on one server). `emit(event, data, to=None)` pushes job progress to the admin namespace."""
    config = app.config["SIGN2SOUND"]
    datasets = DatasetStore(config, app.instance_path + "/datasets")
    if config.get("message_queue"):
        from app.cluster import init_cluster

        db, registry, runner = init_cluster(app, predictor, emit)
    else:
        db = Database(app.instance_path + "/sign2sound.db")
        registry = ModelRegistry(db, predictor, config["model"]["checkpoint"], app.instance_path + "/models")
        registry.restore()
        runner = JobRunner(db, registry, datasets, max_concurrent=config["admin"]["max_concurrent_jobs"],
                           nice=config["admin"].get("job_nice", 10), emit=emit)
    app.extensions.update(admin_db=db, models=registry, datasets=datasets, jobs=runner, blobs=registry.blobs)
    runner.start()
