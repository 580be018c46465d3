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


class ServerAt(Server):
    """tests.conftest.Server, run from another copy of the project (`root`) instead of this checkout."""

    def __init__(self, root: Path, instance_dir: Path, env: dict):
        super().__init__(instance_dir, env, gunicorn=True)
        self.root = root

    def start(self, timeout: float = 180) -> "ServerAt":
        real_popen = subprocess.Popen

        def popen(cmd, **kwargs):  # the same command, from the other copy
            cmd = [str(self.root / Path(part).relative_to(ROOT)) if part.startswith(str(ROOT)) else part for part in cmd]
            return real_popen(cmd, **{**kwargs, "cwd": self.root})

        subprocess.Popen = popen
        try:
            return super().start(timeout)
        finally:
            subprocess.Popen = real_popen


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
        servers = {args.base: ServerAt(base, Path(tmp) / "base-instance", threads),
                   "this checkout": Server(Path(tmp) / "instance", threads, gunicorn=True)}
        try:
            for server in servers.values():
                server.start()
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
