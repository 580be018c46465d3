"""Blocking work off the Socket.IO event loop, on a few long-lived threads (every live module uses it).

Under threading every Socket.IO event gets a fresh thread; MediaPipe run on ever-new threads made glibc give each
its own malloc arena (~50 MB each, kept after the thread ends), so server memory climbed with every connection.
A small fixed pool bounds both that memory and the CPU work in flight on a 2-core machine.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from app import socketio

BLOCKING_WORKERS = 4
_pool = ThreadPoolExecutor(BLOCKING_WORKERS, thread_name_prefix="blocking")  # threads start on first use


def run_blocking(fn, *args):
    """Run blocking work without stalling the event loop: on a real OS thread under eventlet (tpool), on the
    fixed worker pool under threading."""
    if socketio.async_mode == "eventlet":
        from eventlet import tpool

        return tpool.execute(fn, *args)
    return _pool.submit(fn, *args).result()


def run_without_tracker(fn, *args):
    """Blocking work that runs no MediaPipe (a landmark frame): under threading on the calling thread, which is
    already off any event loop (the client's connection thread, where its events run in turn), so the frame
    neither hops to the pool nor waits there behind image frames' trackers; under eventlet on a real thread, as
    run_blocking."""
    if socketio.async_mode == "eventlet":
        return run_blocking(fn, *args)
    return fn(*args)
