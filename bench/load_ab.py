"""Two versions of the server side by side under the same landmark clients: this checkout and an earlier commit.

    python -m bench.load_ab --base 8ea7c81 --clients 16 32 100 --rounds 2

On a shared machine a figure measured minutes apart from another says more of the other engineers' load than of
the code; so both servers (gunicorn, `make run`'s) run at once and take turns, round by round, each N loading one
then the other. The earlier commit is extracted with `git archive` into a temporary folder and served from there
with this checkout's virtualenv. Prints one JSON line per load and writes nothing to docs/.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.load import frame_fields, run_load, webcam_frames
from ml.config import ROOT
from tests.conftest import Server


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", required=True, help="the earlier commit")
    parser.add_argument("--clients", type=int, nargs="+", default=[16, 32, 100])
    parser.add_argument("--seconds", type=float, default=12)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    frames = frame_fields("landmarks", webcam_frames())
    threads = {"SIGN2SOUND_SERVER_THREADS": str(max(100, max(args.clients) + 10))}
    with tempfile.TemporaryDirectory(prefix="bench-ab-") as tmp:
        base = Path(tmp) / "base"
        base.mkdir()
        archive = subprocess.run(["git", "archive", args.base], cwd=ROOT, capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(base)], input=archive, check=True)
        os.symlink(ROOT / ".venv", base / ".venv")
        servers = {args.base: Server(Path(tmp) / "base-instance", threads, gunicorn=True, root=base),
                   "this checkout": Server(Path(tmp) / "instance", threads, gunicorn=True)}
        try:
            for server in servers.values():
                server.start(timeout=180)
            for name, server in servers.items():  # warm-up, not recorded
                run_load(server.url, [server.serving_pid], 4, 3, 15, frames)
            for round_ in range(args.rounds):
                for n in args.clients:
                    for name, server in servers.items():
                        result = run_load(server.url, [server.serving_pid], n, args.seconds, 15, frames)
                        print(json.dumps({"round": round_ + 1, "server": name,
                                          **{k: v for k, v in result.items() if k not in ("rss_mb", "server_ms_per_frame")}}),
                              flush=True)
        finally:
            for server in servers.values():
                server.stop()


if __name__ == "__main__":
    sys.exit(main())
