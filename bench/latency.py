"""Live-path latency: per stage in process, then end to end over Socket.IO on 127.0.0.1, threading vs eventlet.

    python -m bench.latency                       # full run (~2-3 min on 2 cores), writes docs/PERFORMANCE.md
    python -m bench.latency --seconds 3 --no-write   # a quick look

Frames are real Kaggle photos framed as the page's 480x360 JPEGs; each photo is held for a run of frames with
rests between, as a webcam sees a signing hand (tracking mode depends on that continuity).

1. Stages (no server): decode, landmarks, features, inference, speller from app.live.session's own timings, plus
   encoding the `result` as a Socket.IO packet, in a process warmed as the server is before its first frame (the
   lexicon loaded, as app.live.realtime does at start: else its one-time ~1 s lands on the first word's speller
   stage); and the ratio of that whole per-frame time to bare MediaPipe
   on the same JPEG frames (decode, BGR->RGB, Hands.process: what any MediaPipe loop over them does), also
   given against Hands.process alone.
2. End to end, once per server (`python wsgi.py` in each async mode; gunicorn as `make run` serves): round trip
   p50/p95 for 1 client and for 8 clients at 15 fps (each keeps at most 2 frames in flight, like the page),
   sustained fps of 1 client sending as fast as 2 in flight allow, and another client's `ping` round trip while
   one client streams at 15 fps and flat out (the streamer in its own process).
Each streaming client runs in its own process (as browsers do) on the same 2 cores as the server, as a
browser on the same machine would. Bounded loops, loopback only.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import threading
import time
from pathlib import Path

import numpy as np
import socketio

from bench.report import machine_label, write_section
from ml.config import project_path
from tests.conftest import Server, kaggle_photos, webcam_jpeg

LETTERS = "FLUVWKYABC"
HOLD, REST = 10, 3
MAX_IN_FLIGHT = 2
SERVERS = {"threading": "threading, Werkzeug (python wsgi.py)", "eventlet": "eventlet (python wsgi.py)",
           "gunicorn": "threading, gunicorn -w 1 --threads (async_mode threading)",
           "gevent": "gevent, gunicorn's gevent worker (make run, make cluster's servers)"}
PIPELINE_TARGET = 1.15  # the whole per-frame pipeline against bare MediaPipe on the same frames
# Each end-to-end target: its words, the bound in ms, and where a server's figure is (result key, field).
SOCKET_TARGETS = [("1 client p95", 40, ("one", "p95")), ("8 clients p95", 100, ("eight", "p95")),
                  ("ping p95 while one streams at 15 fps", 10, ("ping", "p95"))]
TARGETS = "; ".join([f"pipeline <= {PIPELINE_TARGET} x bare MediaPipe",
                     *(f"{words} <= {bound} ms" for words, bound, _ in SOCKET_TARGETS)])


def stream_frames() -> list[bytes]:
    """A webcam-like stream: each letter's photo held for HOLD frames, then REST frames of no hand."""
    rest = webcam_jpeg(kaggle_photos("nothing", 1)[0])
    frames = []
    for letter in LETTERS:
        frames += [webcam_jpeg(kaggle_photos(letter, 1)[0])] * HOLD + [rest] * REST
    return frames


def pct(values, q: float) -> float:
    return round(float(np.percentile(values, q)), 2) if len(values) else float("nan")


# ---------------------------------------------------------------------------------------------- stages

def bench_stages(frames: list[bytes], repeats: int) -> dict:
    import cv2
    import mediapipe as mp
    from socketio import packet

    from app.live.decoder import shared_lexicon
    from app.live.session import Session, TrackerPool
    from ml.config import load_config
    from ml.inference import Predictor

    config = load_config()
    config["frames"]["max_fps"] = 1e9  # the rate limit is a server policy, not a stage
    predictor = Predictor(project_path(config["model"]["checkpoint"]), device=config["model"]["device"])
    lm = config["landmarks"]
    shared_lexicon()  # the server loads it at start (app.live.realtime), before any word ends
    stages: dict[str, list[float]] = {}
    pipeline, bare, bare_process = [], [], []
    # Alternate bare and pipeline passes so both see the same machine load.
    for _ in range(repeats):
        hands = mp.solutions.hands.Hands(static_image_mode=False, max_num_hands=1,
                                         model_complexity=lm["model_complexity"],
                                         min_detection_confidence=lm["min_detection_confidence"],
                                         min_tracking_confidence=lm["min_tracking_confidence"])
        hands.process(np.zeros((360, 480, 3), np.uint8))  # graph warm-up, as the session's tracker has had
        for frame in frames:
            t0 = time.perf_counter()
            image = cv2.cvtColor(cv2.imdecode(np.frombuffer(frame, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
            t1 = time.perf_counter()
            hands.process(image)
            t2 = time.perf_counter()
            bare.append((t2 - t0) * 1000)
            bare_process.append((t2 - t1) * 1000)
        hands.close()
        session = Session(config, TrackerPool(config["landmarks"]))
        session.process(frames[0], predictor)
        for frame in frames:
            t0 = time.perf_counter()
            result = session.process(frame, predictor)
            t1 = time.perf_counter()
            packet.Packet(packet.EVENT, data=["result", result]).encode()
            t2 = time.perf_counter()
            pipeline.append((t2 - t0) * 1000)
            for name, ms in result["timings_ms"].items():
                if name != "total":
                    stages.setdefault(name, []).append(ms)
            stages.setdefault("encode", []).append((t2 - t1) * 1000)
        session.close()
    predictor.close()
    return {"stages": {k: (pct(v, 50), pct(v, 95), round(statistics.fmean(v), 2)) for k, v in stages.items()},
            "pipeline_ms": round(statistics.fmean(pipeline), 2), "bare_ms": round(statistics.fmean(bare), 2),
            "ratio": round(statistics.fmean(pipeline) / statistics.fmean(bare), 3),
            "process_only_ms": round(statistics.fmean(bare_process), 2),
            "ratio_process_only": round(statistics.fmean(pipeline) / statistics.fmean(bare_process), 3),
            "frames": len(pipeline)}


# ---------------------------------------------------------------------------------------------- end to end

class Streamer:
    """One client streaming frames with at most 2 in flight; fps=None streams as fast as replies allow."""

    def __init__(self, url: str, frames: list[bytes]):
        self.frames = frames
        self.sio = socketio.Client(reconnection=False)
        self.sent_at: dict[int, float] = {}
        self.rtts: list[float] = []
        self.errors = 0
        self.text = ""  # the session's text after the latest result
        self.cond = threading.Condition()
        self.sio.on("result", self._answered)
        self.sio.on("error", self._error)
        self.sio.connect(url, transports=["websocket"], wait_timeout=10)

    def _answered(self, reply: dict) -> None:
        with self.cond:
            self.text = reply.get("text", "")
            sent = self.sent_at.pop(reply.get("seq"), None)
            if sent is not None:
                self.rtts.append((time.perf_counter() - sent) * 1000)
            self.cond.notify()

    def _error(self, reply: dict) -> None:
        with self.cond:
            self.sent_at.pop(reply.get("seq"), None)
            self.errors += 1
            self.cond.notify()

    def run(self, seconds: float, fps: float | None) -> None:
        start = time.perf_counter()
        seq = 0
        while time.perf_counter() - start < seconds:
            with self.cond:
                if not self.cond.wait_for(lambda: len(self.sent_at) < MAX_IN_FLIGHT, timeout=2):
                    self.sent_at.clear()  # replies lost: free the slots, as the page's timeout does
                    self.errors += 1
                self.sent_at[seq] = time.perf_counter()
            self.sio.emit("frame", {"seq": seq, "image": self.frames[seq % len(self.frames)]})
            seq += 1
            if fps:
                time.sleep(max(0.0, start + seq / fps - time.perf_counter()))
        with self.cond:
            self.cond.wait_for(lambda: not self.sent_at, timeout=2)
        self.answered_fps = len(self.rtts) / (time.perf_counter() - start)

    def close(self) -> None:
        # The server ends the session on the DISCONNECT packet; do not wait out the websocket close handshake.
        threading.Thread(target=self.sio.disconnect, daemon=True).start()


def run_clients(url: str, frames: list[bytes], n: int, seconds: float, fps: float | None) -> dict:
    """n clients, each in its own process (as browsers are), streaming the frames from staggered offsets."""
    children, results = _start_streamers(url, frames, n, seconds, fps)
    reports = [results.get(timeout=seconds + 60) for _ in children]
    for child in children:
        child.join()
    rtts = [r for report in reports for r in report["rtts"]]
    return {"clients": n, "fps_each": fps, "p50": pct(rtts, 50), "p95": pct(rtts, 95), "max": pct(rtts, 100),
            "answered_fps": round(sum(r["answered_fps"] for r in reports), 1),
            "errors": sum(r["errors"] for r in reports)}


def _start_streamers(url: str, frames: list[bytes], n: int, seconds: float, fps: float | None):
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    children = []
    for i in range(n):
        offset = i * 7 % len(frames)
        child = context.Process(target=_stream_and_report,
                                args=(url, frames[offset:] + frames[:offset], seconds, fps, results))
        child.start()
        children.append(child)
        time.sleep(0.02)  # staggered, as real browsers are
    return children, results


def _stream_and_report(url: str, frames: list[bytes], seconds: float, fps: float | None, results) -> None:
    streamer = Streamer(url, frames)
    streamer.run(seconds, fps)
    results.put({"rtts": streamer.rtts, "answered_fps": streamer.answered_fps, "errors": streamer.errors})
    streamer.sio.disconnect()


def ping_while_streaming(url: str, frames: list[bytes], seconds: float, fps: float | None) -> dict:
    """Another client's `ping` round trip while one client streams from its own process."""
    pinger = socketio.Client(reconnection=False)
    pinger.connect(url, transports=["websocket"], wait_timeout=10)
    idle = [_ping(pinger) for _ in range(20)]
    children, results = _start_streamers(url, frames, 1, seconds, fps)
    busy = []
    time.sleep(0.5)  # let the stream get going
    while children[0].is_alive() and results.empty():
        busy.append(_ping(pinger))
        time.sleep(0.02)
    report = results.get(timeout=seconds + 60)
    children[0].join()
    threading.Thread(target=pinger.disconnect, daemon=True).start()
    return {"streamer_fps_each": fps, "idle_p50": pct(idle, 50), "p50": pct(busy, 50), "p95": pct(busy, 95),
            "max": pct(busy, 100), "streamer_fps": round(report["answered_fps"], 1)}


def _ping(client: socketio.Client) -> float:
    t0 = time.perf_counter()
    client.call("ping", "x", timeout=10)
    return (time.perf_counter() - t0) * 1000


def speech_round_trip(client: Streamer, times: int = 20) -> dict:
    """`speak` -> `speech` with its ~30 KB WAV (cached after the first): a binary reply, where Nagle's algorithm
    used to add ~40 ms without TCP_NODELAY."""
    arrived = threading.Event()
    client.sio.on("speech", lambda _: arrived.set())
    rtts = []
    for _ in range(times):
        arrived.clear()
        t0 = time.perf_counter()
        client.sio.emit("speak")
        if arrived.wait(10):
            rtts.append((time.perf_counter() - t0) * 1000)
    return {"p50": pct(rtts, 50), "p95": pct(rtts, 95), "received": len(rtts)}


def bench_mode(mode: str, frames: list[bytes], seconds: float) -> dict:
    """`mode`: an async mode served by `python wsgi.py` (Werkzeug's development server for threading), or
    `gunicorn`: threading mode under gunicorn (deploy/gunicorn.conf.py), as `make run` serves, or `gevent` under
    gunicorn's gevent worker."""
    # The per-client rate limit is lifted so the sustained-fps run measures capacity, not policy.
    server = Server(project_path("instance") / "bench-latency", gunicorn=mode in ("gunicorn", "gevent"),
                    env={"SIGN2SOUND_ASYNC_MODE": "threading" if mode == "gunicorn" else mode,
                         "SIGN2SOUND_FRAMES_MAX_FPS": "1000"}).start()
    try:
        warm = Streamer(server.url, frames)
        for _ in range(20):  # the first frames build the MediaPipe graph; the held F is committed (a busy
            warm.run(1.0, 15)  # machine may need more than a second for that)
            if warm.text:
                break
        speech = speech_round_trip(warm)
        warm.close()
        return {"mode": mode, "speech": speech,
                "one": run_clients(server.url, frames, 1, seconds, 15),
                "eight": run_clients(server.url, frames, 8, seconds, 15),
                "max": run_clients(server.url, frames, 1, seconds, None),
                "ping": ping_while_streaming(server.url, frames, seconds, 15),
                "ping_max": ping_while_streaming(server.url, frames, seconds, None)}
    finally:
        server.stop()


# ---------------------------------------------------------------------------------------------- report

def markdown(stages: dict, modes: list[dict], command: str, load: tuple[float, float, float]) -> str:
    lines = ["## Live latency", "", f"Machine: {machine_label()}; load average at start {load[0]:.2f} "
             f"(1 min), {load[1]:.2f} (5 min): other work on the machine shows up in these figures.",
             f"Command: `{command}`", "",
             f"Targets: {TARGETS}.", "",
             f"### Per stage, in process ({stages['frames']} frames, 480x360 JPEG, ms)", "",
             "| stage | p50 | p95 | mean |", "|---|---|---|---|"]
    for name in ["decode", "landmarks", "features", "inference", "speller", "encode"]:
        p50, p95, mean = stages["stages"][name]
        lines.append(f"| {name} | {p50} | {p95} | {mean} |")
    lines += ["", f"Whole pipeline (the stages above) {stages['pipeline_ms']} ms a frame (mean) vs bare MediaPipe on the "
                  f"same JPEG frames (decode, BGR->RGB, Hands.process) {stages['bare_ms']} ms: **{stages['ratio']} x**. "
                  f"Against Hands.process alone on already-decoded frames ({stages['process_only_ms']} ms): "
                  f"{stages['ratio_process_only']} x.", "",
              "### End to end over Socket.IO on 127.0.0.1 (round trip, ms)", "",
              "| server | 1 client p50 / p95 | 8 clients p50 / p95 (max) | answered fps at 8 x 15 | "
              "sustained fps, 1 client | ping p50 / p95 while one streams at 15 fps (idle p50) | "
              "ping p50 / p95 while one streams flat out | speak -> WAV p50 / p95 |",
              "|---|---|---|---|---|---|---|---|"]
    for m in modes:
        one, eight, mx, ping, flat = m["one"], m["eight"], m["max"], m["ping"], m["ping_max"]
        lines.append(f"| {SERVERS[m['mode']]} | {one['p50']} / {one['p95']} | {eight['p50']} / {eight['p95']} ({eight['max']}) | "
                     f"{eight['answered_fps']} | {mx['answered_fps']} | {ping['p50']} / {ping['p95']} "
                     f"({ping['idle_p50']}) | {flat['p50']} / {flat['p95']} | {m['speech']['p50']} / {m['speech']['p95']} |")
    lines += ["", *verdicts(stages, modes)]
    errors = {m["mode"]: sum(m[k]["errors"] for k in ("one", "eight", "max")) for m in modes}
    lines += ["", f"Frames refused or lost: {errors} (2 s timeout; the server's per-client rate limit is lifted "
                  "for the bench).", "Each client runs in its own process on the same 2 cores as the server. "
              "Sustained fps: one client sending whenever fewer than 2 frames are in flight."]
    return "\n".join(lines)


def verdicts(stages: dict, modes: list[dict]) -> list[str]:
    """One line a target: reached or not, with the figures each server measured."""
    def verdict(ok: bool) -> str:
        return "reached" if ok else "**not reached**"

    lines = [f"- pipeline <= {PIPELINE_TARGET} x bare MediaPipe: {verdict(stages['ratio'] <= PIPELINE_TARGET)} "
             f"({stages['ratio']} x)."]
    for words, bound, (key, field) in SOCKET_TARGETS:
        figures = {m["mode"]: m[key][field] for m in modes}
        met = [mode for mode, value in figures.items() if value <= bound]
        status = "reached by every server" if len(met) == len(figures) else (
            f"reached by {', '.join(met)}" if met else "**not reached** by any server")
        lines.append(f"- {words} <= {bound} ms: {status} ({', '.join(f'{k} {v}' for k, v in figures.items())}).")
    return lines


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=8, help="length of each end-to-end run")
    parser.add_argument("--repeats", type=int, default=3, help="passes over the frames for the stage timings")
    parser.add_argument("--modes", nargs="+", default=["gunicorn", "threading", "eventlet"], choices=list(SERVERS))
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/PERFORMANCE.md alone")
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    args = parser.parse_args(argv)

    load = os.getloadavg()
    frames = stream_frames()
    stages = bench_stages(frames, args.repeats)
    print(json.dumps(stages), flush=True)
    modes = []
    for mode in args.modes:
        modes.append(bench_mode(mode, frames, args.seconds))
        print(json.dumps(modes[-1]), flush=True)
    command = f"python -m bench.latency --seconds {args.seconds:g} --repeats {args.repeats} --modes {' '.join(args.modes)}"
    report = markdown(stages, modes, command, load)
    print(report)
    if not args.no_write:
        write_section("latency", report)
    if args.json:
        args.json.write_text(json.dumps({"stages": stages, "modes": modes}, indent=1))


if __name__ == "__main__":
    main()
