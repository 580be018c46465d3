"""Where a landmark frame's time goes in the server, per frame and stage.

    python -m bench.landmark_stages --clients 32 --seconds 10

1. In this process, one stage at a time, CPU per call (the best of 5 repeats, so another engineer's burst on the
   shared cores counts least): the steps a landmark frame takes through the server, each with what it was before
   the cuts beside it (the torch model with torch's default threads or one; python-socketio's own packet against
   app.packets'; the cookie session opened at every event against app.security's once per connection).
2. A real server (gunicorn, in `async_mode: threading`: under gevent every role shares the loop's one thread) under
   N landmark clients (bench.load_clients): its CPU per answered frame split by thread role, from Linux's per-thread
   CPU clocks; a sitecustomize put on the server's PYTHONPATH names
   each thread id for it. Threads that ended during the run (short-lived ones: python-socketio's thread per event
   when its async_handlers is on) are what the process used beyond the named ones.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from bench.load import cpu_s, frame_fields, webcam_frames
from bench.load_clients import stream
from bench.report import machine_label, write_section
from tests.conftest import Server

REPEATS = 5
ROLES = [  # thread names (numbers taken out) -> what the thread does for a frame
    ("ThreadPoolExecutor", "gunicorn's connection threads: Engine.IO's loop, Socket.IO packets decoded, the "
                           "client's events handled (Session.process less the model)"),
    ("Thread (simple_websocket.Base._thread)", "WebSocket readers (simple-websocket, one per connection)"),
    ("Thread (writer)", "Engine.IO writers (packets out, one per connection)"),
    ("blocking", "app.live.blocking's pool: Session.process less the model"),
    ("predictor", "the Predictor's worker: the model"),
]
NAMES_SITECUSTOMIZE = '''
import os, json, threading, time
def _dump():
    while True:
        names = {str(t.native_id): t.name for t in threading.enumerate()}
        path = os.environ["BENCH_THREAD_NAMES"]
        try:
            names = {**json.load(open(path)), **names}
        except (OSError, ValueError):
            pass
        open(path + ".tmp", "w").write(json.dumps(names))
        os.replace(path + ".tmp", path)
        time.sleep(0.5)
def _start():
    threading.Thread(target=_dump, daemon=True, name="bench-thread-names").start()
os.register_at_fork(after_in_child=_start)  # gunicorn's worker is forked: name its threads, not the arbiter's
'''


def cpu_ms(fn, n: int = 300) -> float:
    """CPU ms (all of this process's threads) per call of fn(i): the best of REPEATS runs of n calls."""
    for i in range(20):
        fn(i)
    best = float("inf")
    for _ in range(REPEATS):
        start = time.process_time()
        for i in range(n):
            fn(i)
        best = min(best, (time.process_time() - start) / n * 1000)
    return best


def in_process(frames: list[dict]) -> list[tuple[str, float]]:
    import torch
    from flask.sessions import SecureCookieSessionInterface
    from flask_socketio import _ManagedSession
    from socketio.packet import EVENT, Packet

    from app import create_app
    from app.live.decoder import shared_lexicon
    from app.live.landmark_frames import parse_landmarks
    from app.live.session import Session, Sessions
    from app.packets import FastCheckPacket
    from app.security import ConnectionSessions
    from ml.config import load_config, project_path
    from ml.inference import Predictor

    config = load_config()
    shared_lexicon()
    texts = ["2" + json.dumps(["frame", {"seq": i, **f}]) for i, f in enumerate(frames)]
    parsed = [parse_landmarks(json.loads(t[1:])[1])[1] for t in texts]
    rows = [("Socket.IO packet of a frame decoded (JSON)", cpu_ms(lambda i: Packet(encoded_packet=texts[i % len(texts)]))),
            ("landmark frame checked (parse_landmarks)", cpu_ms(lambda i: parse_landmarks(json.loads(texts[i % len(texts)][1:])[1])))]
    checkpoint = project_path(config["model"]["checkpoint"])
    window = np.random.default_rng(0).normal(0, 1, (1, 8, 67)).astype(np.float32)
    batch = np.repeat(window, 8, axis=0)
    results = {}
    for label, threads in [("torch's default threads (2)", 2), ("1 thread", 1)]:
        torch.set_num_threads(threads)
        predictor = Predictor(checkpoint, "cpu")
        rows.append((f"model, 1 window, {label}", cpu_ms(lambda i: predictor.predict(window))))
        rows.append((f"model, 8 windows in one pass, per window, {label}", cpu_ms(lambda i: predictor.predict(batch)) / 8))
        session = Session(config, Sessions(config).trackers)
        out = []
        rows.append((f"Session.process of a frame, model included (through the Predictor's worker), {label}",
                     cpu_ms(lambda i: out.append(session.process(parsed[i % len(parsed)], predictor, i)))))
        results[label] = out[-1]
        predictor.close()
    result = results["1 thread"]
    for cls in (Packet, FastCheckPacket):
        rows.append((f"`result` packet made and encoded ({cls.__module__}.{cls.__name__})",
                     cpu_ms(lambda i: cls(EVENT, data=["result", result]).encode())))
    # This app (its routes, its secret key), with a Socket.IO connection's environ as gunicorn makes it.
    app = create_app({**config, "instance_dir": tempfile.mkdtemp(prefix="bench-stages-app-")})
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/socket.io/", "QUERY_STRING": "EIO=4&transport=websocket",
               "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "5000", "SERVER_PROTOCOL": "HTTP/1.1",
               "wsgi.url_scheme": "http", "REMOTE_ADDR": "127.0.0.1", "HTTP_HOST": "127.0.0.1:5000",
               "HTTP_CONNECTION": "Upgrade", "HTTP_UPGRADE": "websocket", "HTTP_ORIGIN": "http://127.0.0.1:5000",
               "HTTP_USER_AGENT": "Mozilla/5.0", "HTTP_ACCEPT_LANGUAGE": "en", "HTTP_SEC_WEBSOCKET_VERSION": "13",
               "HTTP_SEC_WEBSOCKET_KEY": "dGhlIHNhbXBsZSBub25jZQ==", "flask.app": app}

    def context(_):
        with app.request_context(environ):
            pass

    for label, interface in [("the cookie session opened each time", SecureCookieSessionInterface()),
                             ("the connection's session (app.security.ConnectionSessions)", ConnectionSessions())]:
        app.session_interface = interface
        environ["saved_session"] = _ManagedSession()  # Flask-SocketIO's copy, made at the connection's first event
        rows.append((f"Flask request context pushed and popped (Flask-SocketIO: every event), {label}",
                     cpu_ms(context)))

    def thread(_):
        t = threading.Thread(target=int)
        t.start()
        t.join()

    rows.append(("a thread started and joined (python-socketio's thread per event, with async_handlers on)",
                 cpu_ms(thread)))
    rows.append((f"`result` size: {len(json.dumps(result))} bytes of JSON", float("nan")))
    return rows


def by_thread_role(frames: list[dict], n_clients: int, seconds: float) -> tuple[dict, dict]:
    """A gunicorn server under n_clients: CPU ms per answered frame by thread role, and the run's figures."""
    with tempfile.TemporaryDirectory(prefix="bench-stages-") as tmp:
        (Path(tmp) / "sitecustomize.py").write_text(NAMES_SITECUSTOMIZE)
        names_path = Path(tmp) / "names.json"
        server = Server(Path(tmp) / "instance", gunicorn=True, env={
            "PYTHONPATH": os.pathsep.join([tmp, os.environ.get("PYTHONPATH", "")]),
            "BENCH_THREAD_NAMES": str(names_path), "SIGN2SOUND_SERVER_THREADS": str(max(100, n_clients + 10)),
            "SIGN2SOUND_ASYNC_MODE": "threading"}).start()
        try:
            pid = server.serving_pid
            stream(server.url, 4, 3, 15, frames)  # warm-up

            def probe():
                return cpu_s(pid), thread_cpu(pid), os.getloadavg()[0]

            clients, probes = stream(server.url, n_clients, seconds, 15, frames, probe=probe)
            names = json.loads(names_path.read_text())
        finally:
            server.stop()
    (total0, threads0, load), (total1, threads1, _) = probes[0], probes[-1]
    answered = sum(len(c.rtts) for c in clients)
    roles: dict[str, float] = {}
    for tid, cpu in threads1.items():
        name = re.sub(r"[-_]\d+", "", names.get(tid, "unnamed"))
        role = dict(ROLES).get(name, name)
        roles[role] = roles.get(role, 0.0) + cpu - threads0.get(tid, 0.0)
    roles["threads that ended during the run"] = (total1 - total0) - sum(roles.values())
    per_frame = {role: 1000 * cpu / answered for role, cpu in roles.items() if cpu > 0}
    rtts = np.array([r for c in clients for r in c.rtts])
    return per_frame, dict(clients=n_clients, answered_fps=round(answered / seconds, 1), load=round(load, 1),
                           p50=round(float(np.percentile(rtts, 50)), 1), p95=round(float(np.percentile(rtts, 95)), 1),
                           server_ms=round(1000 * (total1 - total0) / answered, 2))


def thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds of each live thread of `pid`, by thread id."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            fields = Path(f"/proc/{pid}/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # it ended meanwhile
            continue
        out[tid] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=10)
    args = parser.parse_args(argv)
    frames = frame_fields("landmarks", webcam_frames())
    rows = in_process([f for f in frames if f["landmarks"] is not None])
    roles, run = by_thread_role(frames, args.clients, args.seconds)
    lines = ["## Landmark frames: where the time goes", "",
             f"Machine: {machine_label()}; measured on a shared 2-core machine (load average {os.getloadavg()[0]:.1f} "
             "at the end).", f"Command: `python -m bench.landmark_stages --clients {args.clients} --seconds {args.seconds:g}`",
             "", "In this process, one stage at a time (CPU ms per call, best of 5):", "",
             "| stage | CPU ms |", "|---|---|"]
    lines += [f"| {stage} | {'' if np.isnan(ms) else f'{ms:.3f}'} |" for stage, ms in rows]
    lines += ["", f"A real server (gunicorn, async_mode threading) under {run['clients']} landmark clients at 15 fps: {run['answered_fps']} frames "
                  f"a second answered, p50 {run['p50']} ms, p95 {run['p95']} ms, {run['server_ms']} ms of server CPU per "
                  f"frame (load average {run['load']}). Its CPU per answered frame by thread:", "",
              "| thread | CPU ms per frame |", "|---|---|"]
    lines += [f"| {role} | {ms:.3f} |" for role, ms in sorted(roles.items(), key=lambda kv: -kv[1])]
    print("\n".join(lines))
    write_section("landmark-stages", "\n".join(lines))


if __name__ == "__main__":
    main()
