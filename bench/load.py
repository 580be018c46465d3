"""Load and soak: N Socket.IO clients stream real frames at a set rate to a real server on 127.0.0.1.

    python -m bench.load --clients 1 4 8 12 16 --seconds 20          # sweep; the largest N with p95 <= 100 ms
    python -m bench.load --clients 8 --seconds 600 --section soak    # 10-minute soak, server RSS over time
    python -m bench.load --clients 1 8 --seconds 15 --compare gunicorn proxy werkzeug --rounds 3
    python -m bench.load --clients 8 50 100 150 --kinds image landmarks --max-p95 50 --section landmarks
    python -m bench.load --clients 8 32 64 100 --kinds landmarks image --max-p95 50 --cluster --section cluster

The server is gunicorn (deploy/gunicorn.conf.py), as `make run` serves. --compare starts the named set-ups side by
side (werkzeug: `python wsgi.py`, the development server; gunicorn: `make run`'s server; proxy: a whole cluster,
redis-server, 2 servers in cluster mode, a worker and nginx, as tests/test_cluster.py starts it) and loads them in
turn, round by round, so all see the same machine (2 cores shared with other work).

--kinds: image clients send the page's webcam JPEGs (the server's tracker reads them); landmark clients send what the
page's own tracker would send for the same frames ({"landmarks", "handedness", "aspect"}, made here by the server's
tracker), so the server runs only the model. With both, each N is loaded with one kind then the other, in one run.
The clients are bench.load_clients': all in one thread, each like the page (at most 2 frames in flight; a frame
due while 2 are in flight is dropped, counted as dropped by backpressure, never queued), so that the load
generator takes little of the cores it shares with the server (its CPU is measured and reported beside the
server's). --cluster loads `make cluster`'s set-up instead of one server, the clients spread over its servers by
nginx's ip_hash (they connect from distinct loopback addresses). Bounded in time, loopback only.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import time
from pathlib import Path

import numpy as np

from ml.config import load_config

from bench.load_clients import stream
from bench.report import machine_label, rss_mb, write_section
from tests.conftest import Server, kaggle_photos, webcam_jpeg

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


def run_load(url: str, pids: list[int], n_clients: int, seconds: float, fps: float, frames: list[dict],
             sources: int = 1) -> dict:
    """n_clients stream for `seconds` (bench.load_clients, one thread); RTTs, counts and the CPU each side used.
    pids: the serving processes (a cluster's servers, and its proxy and Redis: all on the same cores)."""
    def probe():
        return time.perf_counter(), cpu_s(), [cpu_s(p) for p in pids], rss_mb(pids[0])

    clients, probes = stream(url, n_clients, seconds, fps, frames, sources, probe)
    (t0, mine0, theirs0, _), (t1, mine1, theirs1, _) = probes[0], probes[-1]
    wall = t1 - t0
    rtts = np.array([r for c in clients for r in c.rtts]) if any(c.rtts for c in clients) else np.array([np.nan])
    answered = sum(len(c.rtts) for c in clients)
    stages = {}
    for timings in (t for c in clients for t in c.timings):
        for stage, ms in timings.items():
            stages.setdefault(stage, []).append(ms)
    return dict(clients=n_clients, fps=fps, seconds=seconds, sent=sum(c.sent for c in clients), answered=answered,
                throughput_fps=round(answered / seconds, 1),
                dropped_backpressure=sum(c.dropped for c in clients), errors=sum(c.errors for c in clients),
                connect_failures=sum(c.connect_failed for c in clients),
                p50_ms=round(float(np.percentile(rtts, 50)), 1), p95_ms=round(float(np.percentile(rtts, 95)), 1),
                p99_ms=round(float(np.percentile(rtts, 99)), 1),
                rss_mb=[(round(t - t0, 1), round(m, 1)) for t, _, _, m in probes],
                kind="landmarks" if "landmarks" in frames[0] else "image",
                clients_cores=round((mine1 - mine0) / wall, 2),
                server_cores=round(sum(b - a for a, b in zip(theirs0, theirs1)) / wall, 2),
                server_ms_per_frame={k: round(float(np.mean(v)), 3) for k, v in stages.items()},
                load_average=os.getloadavg())


def markdown(results: list[dict], command: str, section: str, max_p95: float = 100, cluster: bool = False) -> str:
    serving = ("a cluster: 2 gunicorn servers in cluster mode behind nginx, Redis, an idle training worker "
               "(`make cluster`'s), clients spread by ip_hash; \"server\" below is all of them and nginx and Redis"
               if cluster else "one gunicorn server (`make run`'s)") + f", async_mode {load_config()['async_mode']}"
    loads = [r["load_average"][0] for r in results]
    lines = [f"## Load ({section})", "",
             f"Machine: {machine_label()}; measured on a shared 2-core machine (1-minute load average "
             f"{min(loads):.1f}-{max(loads):.1f} during the runs). Serving: {serving}. Load clients: "
             "bench.load_clients, all in one thread of the bench's process, on the same 2 cores.",
             f"Command: `{command}`", "",
             "| frames | clients | fps each | throughput fps | p50 ms | p95 ms | p99 ms | dropped (backpressure) | "
             "errors | server RSS start -> end MB | cores: server, load clients | server CPU ms a frame | load avg |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        per_frame = 1000 * r["server_cores"] / r["throughput_fps"] if r["throughput_fps"] else float("nan")
        lines.append(f"| {r['kind']} | {r['clients']} | {r['fps']:g} | {r['throughput_fps']} | {r['p50_ms']} | "
                     f"{r['p95_ms']} | {r['p99_ms']} | {r['dropped_backpressure']} | {r['errors']} | "
                     f"{r['rss_mb'][0][1]} -> {r['rss_mb'][-1][1]} | {r['server_cores']}, {r['clients_cores']} | "
                     f"{per_frame:.2f} | {r['load_average'][0]:.1f} |")
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
    parser.add_argument("--cluster", action="store_true",
                        help="load a cluster (Redis, 2 servers, a worker, nginx: `make cluster`'s) instead of one server; "
                             "clients connect from distinct loopback addresses so that ip_hash spreads them")
    args = parser.parse_args(argv)

    jpegs = webcam_frames()
    if args.compare:
        return compare(args, frame_fields("image", jpegs))
    frames = {kind: frame_fields(kind, jpegs) for kind in args.kinds}
    with serving(args.cluster, max(args.clients)) as (url, pids, sources):
        # Warm-up, not recorded: the first frames wait for the word decoder's lexicon and the model's first calls.
        run_load(url, pids, 2 * len(pids), 3, args.fps, frames[args.kinds[0]], sources)
        results = []
        for n in args.clients:
            for kind in args.kinds:
                result = run_load(url, pids, n, args.seconds, args.fps, frames[kind], sources)
                print(json.dumps({k: v for k, v in result.items() if k != "rss_mb"}), flush=True)
                results.append(result)
                if kind == "image" and len(args.kinds) > 1:
                    time.sleep(SETTLE_S)  # the frames an overloaded server still holds are not the next run's
    command = "python -m bench.load " + " ".join(
        [f"--clients {' '.join(map(str, args.clients))}", f"--seconds {args.seconds:g}", f"--fps {args.fps:g}",
         f"--kinds {' '.join(args.kinds)}", f"--max-p95 {args.max_p95:g}", f"--section {args.section}"]
        + (["--cluster"] if args.cluster else []))
    write_section(f"load-{args.section}", markdown(results, command, args.section, args.max_p95, args.cluster))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


SOURCES = 64  # --cluster: the loopback /24s the clients connect from (127.0.k.1), so nginx's ip_hash spreads them


@contextlib.contextmanager
def serving(cluster: bool, max_clients: int):
    """The set-up under load, started and stopped: (its URL, the processes that serve it, client source addresses).
    One gunicorn server (`make run`'s), or with `cluster` the whole cluster, whose every process (servers, nginx,
    Redis; the idle training worker aside) counts as the serving side's CPU."""
    import tempfile

    # gunicorn's threads bound the connections (config.yaml server.threads): room for every client here
    threads = {"SIGN2SOUND_SERVER_THREADS": str(max(100, max_clients + 10))}
    if not cluster:
        server = Server(Path("instance") / "bench", gunicorn=True, env=threads).start()
        try:
            yield server.url, [server.serving_pid], 1
        finally:
            server.stop()
        return
    from tests.test_cluster import Cluster

    with tempfile.TemporaryDirectory(prefix="bench-load-") as tmp, patched_environ(threads):
        cluster = Cluster(Path(tmp) / "cluster", tiny_sets=False)
        try:
            cluster.start()
            nginx = cluster.nginx.proc.pid  # its worker process does the proxying
            nginx_workers = Path(f"/proc/{nginx}/task/{nginx}/children").read_text().split()
            pids = [s.serving_pid for s in cluster.servers] + [*map(int, nginx_workers), cluster.redis.proc.pid]
            yield cluster.proxy, pids, SOURCES
        finally:
            cluster.stop()


@contextlib.contextmanager
def patched_environ(values: dict):
    """os.environ with `values` while inside (the cluster's servers take the bench's environment)."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)


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
                    url, pids = ((cluster.proxy, [s.serving_pid for s in cluster.servers]) if name == "proxy"
                                 else (servers[name].url, [servers[name].serving_pid]))
                    for n in args.clients:
                        result = run_load(url, pids, n, args.seconds, args.fps, frames)
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
