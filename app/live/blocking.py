"""Blocking work off the Socket.IO event loop, on a few long-lived threads (every live module uses it).

Under threading every Socket.IO event gets a fresh thread; MediaPipe run on ever-new threads made glibc give each
its own malloc arena (~50 MB each, kept after the thread ends), so server memory climbed with every connection.
A small fixed pool bounds both that memory and the CPU work in flight on a 2-core machine.

Under gevent (gunicorn's gevent worker monkey-patches the server) every thread of this server is a greenlet on one
event loop, so its locks, queues and the Predictor's worker are all green: only the native work that holds none of
them (decoding an image, a MediaPipe graph) leaves the loop, through `native`, for a real thread of gevent's own.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from app import socketio

BLOCKING_WORKERS = 4
_pool = ThreadPoolExecutor(BLOCKING_WORKERS, thread_name_prefix="blocking")  # threads start on first use
_native_pool = None  # gevent's ThreadPool, made on first use on the loop's own thread


def _mode() -> str | None:
    return getattr(socketio, "async_mode", None)  # None before init_app (a CLI that never serves)


def run_blocking(fn, *args):
    """Run blocking work without stalling the event loop: on a real OS thread under eventlet (tpool), on the
    fixed worker pool under threading, in the calling greenlet under gevent (whose native parts go through
    `native`)."""
    if _mode() == "eventlet":
        from eventlet import tpool

        return tpool.execute(fn, *args)
    if _mode() == "gevent":
        return fn(*args)
    return _pool.submit(fn, *args).result()


def run_without_tracker(fn, *args):
    """Blocking work that runs no MediaPipe (a landmark frame): under threading and gevent on the calling thread,
    which is already off any event loop or green (the client's connection, where its events run in turn), so the
    frame neither hops to the pool nor waits there behind image frames' trackers; under eventlet on a real thread,
    as run_blocking."""
    if _mode() == "eventlet":
        return run_blocking(fn, *args)
    return fn(*args)


def native(fn, *args):
    """Native work that takes none of the server's locks and releases the GIL (an image decoded, a MediaPipe graph
    made or run): on a real thread under gevent, so the loop goes on serving every other client meanwhile; on the
    calling thread otherwise (under threading and eventlet run_blocking already put it on one)."""
    global _native_pool
    if _mode() != "gevent":
        return fn(*args)
    if _native_pool is None:
        from gevent.threadpool import ThreadPool

        _native_pool = ThreadPool(BLOCKING_WORKERS)
    return _native_pool.apply(fn, args)


def native_iter(items):
    """Each item of an iterator that does native work to make it (a video's frames decoded), made by `native`."""
    items, done = iter(items), object()
    while (item := native(next, items, done)) is not done:
        yield item
