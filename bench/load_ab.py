"""Two servers side by side under the same clients: this checkout and an earlier commit, or this checkout in two
async modes.

    python -m bench.load_ab --base 8ea7c81 --clients 16 32 100 --rounds 2
    python -m bench.load_ab --modes threading gevent --kind image --clients 4 8 --rounds 2

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
    versions = parser.add_mutually_exclusive_group(required=True)
    versions.add_argument("--base", help="the earlier commit (both in config.yaml's async mode)")
    versions.add_argument("--modes", nargs=2, metavar="MODE", help="this checkout in two async modes (gunicorn's)")
    parser.add_argument("--kind", choices=["landmarks", "image"], default="landmarks", help="what the clients send")
    parser.add_argument("--clients", type=int, nargs="+", default=[16, 32, 100])
    parser.add_argument("--seconds", type=float, default=12)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    frames = frame_fields(args.kind, webcam_frames())
    threads = {"SIGN2SOUND_SERVER_THREADS": str(max(100, max(args.clients) + 10))}
    with tempfile.TemporaryDirectory(prefix="bench-ab-") as tmp:
        if args.modes:
            servers = {mode: Server(Path(tmp) / mode, {**threads, "SIGN2SOUND_ASYNC_MODE": mode}, gunicorn=True)
                       for mode in args.modes}
        else:
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
