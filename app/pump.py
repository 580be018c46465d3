"""Emits on behalf of OS threads (the job runner, the adaptation pool): under eventlet only the hub's own green
threads may emit, so they queue here and one background task of the async mode in use sends them."""
from __future__ import annotations

import logging
import queue

from app import socketio

log = logging.getLogger(__name__)


class EmitPump:
    """Queued emits, sent by one background task (to everyone in the namespace, or to one sid).
    `local`: every emit goes to a client of this server, so not through the cluster's message queue (Redis)."""

    def __init__(self, namespace: str, interval_s: float = 0.1, local: bool = False):
        self.namespace, self.interval_s, self.local = namespace, interval_s, local
        self._queue: queue.Queue = queue.Queue()
        socketio.start_background_task(self._run)

    def put(self, event: str, data: dict, to: str | None = None) -> None:
        self._queue.put((event, data, to))

    def _run(self) -> None:
        while True:
            try:
                event, data, to = self._queue.get_nowait()
            except queue.Empty:
                socketio.sleep(self.interval_s)
                continue
            try:
                socketio.emit(event, data, namespace=self.namespace, to=to, ignore_queue=self.local)
            except Exception:  # one failed push must not end the pump
                log.exception("could not push %s", event)
