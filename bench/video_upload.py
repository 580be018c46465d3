"""One video uploaded to the page's "Transcribe a video": read by a single server, and by a cluster's worker
(docs/PERFORMANCE.md, "A video upload: one server and a cluster's worker").

    python -m bench.video_upload [VIDEO] [--rounds N]

A single server (gunicorn) and a cluster (redis-server, two servers, a worker, nginx: tests.test_cluster.Cluster)
run at once. VIDEO (default: the video of FULL FLY that tests/test_transcribe.py builds from real photos) is sent to
each in turn, round by round (the same machine load), and timed from the POST until its transcript is ready; the
first upload to each warms it (MediaPipe's graph, the worker's model) and is left out.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from bench.report import machine_label, write_section
from tests.conftest import Server
from tests.test_cluster import Cluster
from tests.test_transcribe import follow, post, spelled_parts, write_video


def timed(base: str, video: bytes) -> tuple[float, dict]:
    started = time.perf_counter()
    status, job = post(base, video)
    if status != 202:
        raise RuntimeError(f"{base} refused the video: {job}")
    done = follow(base, job["id"])
    if done["status"] != "done":
        raise RuntimeError(f"{base} could not read the video: {done}")
    return time.perf_counter() - started, done


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("video", nargs="?", help="a video with fingerspelling (default: tests/test_transcribe.py's)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-video-upload-") as tmp:
        video = Path(args.video or write_video(Path(tmp) / "spelled.mp4", spelled_parts())).read_bytes()
        single = Server(Path(tmp) / "single", gunicorn=True)
        cluster = Cluster(Path(tmp) / "cluster", tiny_sets=False)
        setups = {"one server": lambda: single.url, "cluster: proxy, worker": lambda: cluster.proxy}
        times: dict[str, list[float]] = {name: [] for name in setups}
        try:
            cluster.start()
            single.start()
            for round_ in range(args.rounds + 1):
                for name, base in setups.items():
                    seconds, done = timed(base(), video)
                    print(f"round {round_} {name}: {seconds:.2f} s, {done['transcript']['text']!r}", flush=True)
                    if round_:
                        times[name].append(seconds)
        finally:
            single.stop()
            cluster.stop()
    duration = done["transcript"]["duration"]
    rows = [f"| {name} | {' / '.join(f'{t:.2f}' for t in ts)} | {statistics.median(ts):.2f} s | "
            f"{duration / statistics.median(ts):.1f} |" for name, ts in times.items()]
    what = (f"`{args.video}` ({duration:.1f} s)" if args.video else
            f"the {duration:.1f} s video tests/test_transcribe.py builds (480x360, 15 fps, FULL FLY)")
    write_section("video-upload", "\n".join([
        "## A video upload: one server and a cluster's worker", "",
        f"`python -m bench.video_upload{' VIDEO' if args.video else ''} --rounds {args.rounds}`: {what}, "
        "sent to each set-up in turn, round by round, "
        "timed from the POST until its transcript is ready (speech included), after one warm-up upload each.",
        f"{machine_label()}; measured on a busy shared 2-core machine, both set-ups running at once.", "",
        "| set-up | seconds per round | median | x real time |", "| --- | --- | --- | --- |", *rows]))


if __name__ == "__main__":
    main()
