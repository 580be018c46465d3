"""Load and soak: N python-socketio clients stream real frames at a set rate to a real server on 127.0.0.1.

    python -m bench.load --clients 1 4 8 12 16 --seconds 20          # sweep; the largest N with p95 <= 100 ms
    python -m bench.load --clients 8 --seconds 600 --section soak    # 10-minute soak, server RSS over time
    python -m bench.load --clients 1 8 --seconds 15 --compare gunicorn proxy werkzeug --rounds 3
    python -m bench.load --clients 8 50 100 150 --kinds image landmarks --max-p95 50 --section landmarks

The server is gunicorn (deploy/gunicorn.conf.py), as `make run` serves. --compare starts the named set-ups side by
side (werkzeug: `python wsgi.py`, the development server; gunicorn: `make run`'s server; proxy: a whole cluster,
redis-server, 2 servers in cluster mode, a worker and nginx, as tests/test_cluster.py starts it) and loads them in
turn, round by round, so all see the same machine (2 cores shared with other work).

--kinds: image clients send the page's webcam JPEGs (the server's tracker reads them); landmark clients send what the
page's own tracker would send for the same frames ({"landmarks", "handedness", "aspect"}, made here by the server's
tracker), so the server runs only the model. With both, each N is loaded with one kind then the other, in one run.
Each client keeps at most 2 frames in flight, like the page: a frame due while 2 are in flight is dropped
(counted as dropped by backpressure), never queued. Bounded in time, loopback only.
"""
from __future__ import annotations

import argparse
import json
import os
import threading
import time
from pathlib import Path

import numpy as np
import socketio

from ml.config import load_config

from bench.report import machine_label, rss_mb, write_section
from tests.conftest import Server, kaggle_photos, webcam_jpeg

MAX_IN_FLIGHT = 2
SETTLE_S = 15  # --kinds: after image clients, the seconds their frames queued in the server take to drain (measured:
               # 100 landmark clients right after 50 image clients could not connect within 10 s)


def webcam_frames(letters: str = "ABCLVWY", per_letter: int = 3) -> list[bytes]:
    """Real Kaggle photos shaped like the page's webcam JPEGs (480x360, quality 70)."""
    return [webcam_jpeg(p) for c in letters for p in kaggle_photos(c, per_letter)]


def frame_fields(kind: str, jpegs: list[bytes]) -> list[dict]:
    """The `frame` payloads (less the seq) of one kind of client for these webcam JPEGs, streamed in order."""
    if kind == "image":
        return [{"image": j} for j in jpegs]
    import cv2

    from ml.landmarks import HandTracker, tracker_settings

    with HandTracker(static=False, **tracker_settings(load_config()["landmarks"])) as tracker:
        hands = [tracker.process(cv2.imdecode(np.frombuffer(j, np.uint8), cv2.IMREAD_COLOR)) for j in jpegs]
    return [{"landmarks": None if h is None else h.landmarks.tolist(), "handedness": h and h.handedness,
             "aspect": 4 / 3} for h in hands]


def cpu_s(pid: int | None = None) -> float:
    """CPU seconds (user + system) a process used so far: this one (the load clients) or `pid`."""
    if pid is None:
        return time.process_time()
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class StreamingClient:
    def __init__(self, url: str, frames: list[dict], fps: float):
        self.url, self.frames, self.period = url, frames, 1.0 / fps
        self.sio = socketio.Client(reconnection=False)
        self.sent_at: dict[int, float] = {}
        self.rtts: list[float] = []
        self.sent = self.dropped = self.errors = 0
        self.connect_failed = False
        self.lock = threading.Lock()
        self.sio.on("result", self._on_reply)
        self.sio.on("error", lambda data: self._on_reply(data, error=True))

    def _on_reply(self, data, error=False):
        seq = data.get("seq") if isinstance(data, dict) else None
        with self.lock:
            sent = self.sent_at.pop(seq, None)
            if error:
                self.errors += 1
            elif sent is not None:
                self.rtts.append((time.perf_counter() - sent) * 1000)

    def run(self, seconds: float) -> None:
        try:  # a busy machine can take seconds to answer a connect; a client that never connects is an error
            self.sio.connect(self.url, transports=["websocket"], wait_timeout=10)
        except socketio.exceptions.ConnectionError:
            self.errors += 1
            self.connect_failed = True
            return
        start = time.perf_counter()
        seq = 0
        while (now := time.perf_counter()) - start < seconds:
            with self.lock:
                # a frame with no answer after 2 s is lost: free its slot like the page's timeout does
                for s, t in list(self.sent_at.items()):
                    if now - t > 2.0:
                        del self.sent_at[s]
                        self.errors += 1
                busy = len(self.sent_at) >= MAX_IN_FLIGHT
                if not busy:
                    self.sent_at[seq] = now
            if busy:
                self.dropped += 1
            else:
                self.sio.emit("frame", {"seq": seq, **self.frames[seq % len(self.frames)]})
                self.sent += 1
            seq += 1
            time.sleep(max(0.0, start + seq * self.period - time.perf_counter()))
        time.sleep(0.5)  # let the last answers arrive
        self.sio.disconnect()


def run_load(url: str, pid: int, n_clients: int, seconds: float, fps: float, frames: list[dict]) -> dict:
    clients = [StreamingClient(url, frames, fps) for _ in range(n_clients)]
    threads = [threading.Thread(target=c.run, args=(seconds,)) for c in clients]
    rss = [(0.0, rss_mb(pid))]
    cpu0 = (cpu_s(), cpu_s(pid))
    start = time.perf_counter()
    for t in threads:
        t.start()
        time.sleep(0.05)  # stagger, as real browsers are
    while any(t.is_alive() for t in threads):
        time.sleep(min(10.0, seconds / 10))
        rss.append((round(time.perf_counter() - start, 1), rss_mb(pid)))
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    clients_cores, server_cores = ((cpu_s() - cpu0[0]) / wall, (cpu_s(pid) - cpu0[1]) / wall)
    rtts = np.array([r for c in clients for r in c.rtts]) if any(c.rtts for c in clients) else np.array([np.nan])
    answered = sum(len(c.rtts) for c in clients)
    return dict(clients=n_clients, fps=fps, seconds=seconds, sent=sum(c.sent for c in clients), answered=answered,
                throughput_fps=round(answered / seconds, 1),
                dropped_backpressure=sum(c.dropped for c in clients), errors=sum(c.errors for c in clients),
                connect_failures=sum(c.connect_failed for c in clients),
                p50_ms=round(float(np.percentile(rtts, 50)), 1), p95_ms=round(float(np.percentile(rtts, 95)), 1),
                p99_ms=round(float(np.percentile(rtts, 99)), 1), rss_mb=[(t, round(m, 1)) for t, m in rss],
                kind="landmarks" if "landmarks" in frames[0] else "image",
                clients_cores=round(clients_cores, 2), server_cores=round(server_cores, 2))


def markdown(results: list[dict], command: str, section: str, max_p95: float = 100) -> str:
    lines = [f"## Load ({section})", "", f"Machine: {machine_label()}.", f"Command: `{command}`", "",
             "| frames | clients | fps each | throughput fps | p50 ms | p95 ms | p99 ms | dropped (backpressure) | "
             "errors | server RSS start -> end MB | cores: server, load clients |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['kind']} | {r['clients']} | {r['fps']:g} | {r['throughput_fps']} | {r['p50_ms']} | "
                     f"{r['p95_ms']} | {r['p99_ms']} | {r['dropped_backpressure']} | {r['errors']} | "
                     f"{r['rss_mb'][0][1]} -> {r['rss_mb'][-1][1]} | {r['server_cores']}, {r['clients_cores']} |")
    lines.append("")
    for kind in dict.fromkeys(r["kind"] for r in results):
        mine = [r for r in results if r["kind"] == kind]
        ok = [r["clients"] for r in mine if r["p95_ms"] <= max_p95 and r["errors"] == 0]
        lines.append(f"- {kind} frames: largest N with p95 <= {max_p95:g} ms and no error: "
                     f"**{max(ok) if ok else 'none'}** (of {[r['clients'] for r in mine]}).")
    if len(results) == 1 and len(results[0]["rss_mb"]) > 2:
        series = ", ".join(f"{t:g}s {m}" for t, m in results[0]["rss_mb"])
        lines += ["", f"Server RSS over time (MB): {series}"]
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4, 8, 12, 16])
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--fps", type=float, default=15)
    parser.add_argument("--section", default="sweep", help="name of the docs/PERFORMANCE.md section to write")
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    parser.add_argument("--kinds", nargs="+", choices=["image", "landmarks"], default=["image"],
                        help="what the clients send: webcam JPEGs, or the page tracker's landmarks (each N, each kind)")
    parser.add_argument("--max-p95", type=float, default=100, help="the p95 bound the summary's largest N keeps")
    parser.add_argument("--compare", nargs="+", choices=list(SETUPS),
                        help="load these set-ups in turn, all running at once (the first is the baseline)")
    parser.add_argument("--rounds", type=int, default=3, help="--compare: rounds of turns")
    args = parser.parse_args(argv)

    jpegs = webcam_frames()
    if args.compare:
        return compare(args, frame_fields("image", jpegs))
    frames = {kind: frame_fields(kind, jpegs) for kind in args.kinds}
    # gunicorn's threads bound the connections (config.yaml server.threads): room for every client here
    server = Server(Path("instance") / "bench", gunicorn=True,
                    env={"SIGN2SOUND_SERVER_THREADS": str(max(100, max(args.clients) + 10))}).start()
    try:
        # Warm-up, not recorded: the first frames wait for the word decoder's lexicon and the model's first calls.
        run_load(server.url, server.serving_pid, 2, 3, args.fps, frames[args.kinds[0]])
        results = []
        for n in args.clients:
            for kind in args.kinds:
                result = run_load(server.url, server.serving_pid, n, args.seconds, args.fps, frames[kind])
                print(json.dumps({k: v for k, v in result.items() if k != "rss_mb"}), flush=True)
                results.append(result)
                if kind == "image" and len(args.kinds) > 1:
                    time.sleep(SETTLE_S)  # the frames an overloaded server still holds are not the next run's
    finally:
        server.stop()
    command = "python -m bench.load " + " ".join(
        [f"--clients {' '.join(map(str, args.clients))}", f"--seconds {args.seconds:g}", f"--fps {args.fps:g}",
         f"--kinds {' '.join(args.kinds)}", f"--max-p95 {args.max_p95:g}", f"--section {args.section}"])
    write_section(f"load-{args.section}", markdown(results, command, args.section, args.max_p95))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


SETUPS = {"werkzeug": "1 server, Werkzeug (python wsgi.py)", "gunicorn": "1 server, gunicorn (make run)",
          "proxy": "2 servers behind nginx (make cluster)"}


def compare(args, frames: list[dict]) -> None:
    """The set-ups named by --compare, all running at once, loaded in turn round by round (same machine load)."""
    import tempfile

    from tests.test_cluster import Cluster

    with tempfile.TemporaryDirectory(prefix="bench-compare-") as tmp:
        servers = {name: Server(Path(tmp) / name, gunicorn=name == "gunicorn")
                   for name in args.compare if name != "proxy"}
        cluster = Cluster(Path(tmp) / "cluster", tiny_sets=False) if "proxy" in args.compare else None
        rows = {name: [] for name in args.compare}
        try:
            if cluster:
                cluster.start()
            for server in servers.values():
                server.start()
            for round_ in range(args.rounds):
                for name in args.compare:
                    url, pid = ((cluster.proxy, cluster.servers[0].serving_pid) if name == "proxy"
                                else (servers[name].url, servers[name].serving_pid))
                    for n in args.clients:
                        result = run_load(url, pid, n, args.seconds, args.fps, frames)
                        print(json.dumps({"round": round_ + 1, "setup": name,
                                          **{k: v for k, v in result.items() if k != "rss_mb"}}), flush=True)
                        rows[name].append(result)
        finally:
            for server in servers.values():
                server.stop()
            if cluster:
                cluster.stop()
    command = (f"python -m bench.load --clients {' '.join(map(str, args.clients))} --seconds {args.seconds:g} "
               f"--fps {args.fps:g} --compare {' '.join(args.compare)} --rounds {args.rounds}")
    lines = ["## Load: server set-ups side by side", "",
             f"Machine: {machine_label()}; shared with other engineers' work, so every set-up runs at once and "
             "they take turns, round by round, to see the same machine load.", f"Command: `{command}`", "",
             "| set-up | clients | p95 ms per round | median p95 | p50 ms per round | throughput fps per round | "
             "errors (of them, clients that could not connect) |",
             "|---|---|---|---|---|---|---|"]
    median = {}
    for name, results in rows.items():
        for n in args.clients:
            mine = [r for r in results if r["clients"] == n]
            median[name, n] = float(np.median([r["p95_ms"] for r in mine]))
            lines.append(f"| {SETUPS[name]} | {n} | {', '.join(str(r['p95_ms']) for r in mine)} | {median[name, n]:g} | "
                         f"{', '.join(str(r['p50_ms']) for r in mine)} | "
                         f"{', '.join(str(r['throughput_fps']) for r in mine)} | {sum(r['errors'] for r in mine)} "
                         f"({sum(r['connect_failures'] for r in mine)}) |")
    lines.append("")
    base = args.compare[0]
    for name in args.compare[1:]:
        for n in args.clients:
            change = 100 * (median[name, n] / median[base, n] - 1)
            lines.append(f"- {SETUPS[name]} vs {SETUPS[base]}, {n} clients: median p95 **{change:+.1f} %**.")
    if "proxy" in args.compare:
        lines += ["", "Every load client connects from 127.0.0.1, so nginx's ip_hash sends all of them to the same "
                      "server: the proxy rows measure the cost of nginx and cluster mode, not two servers' capacity "
                      "(on 2 cores a second server has no core of its own anyway)."]
    write_section("load-compare", "\n".join(lines))


if __name__ == "__main__":
    main()
