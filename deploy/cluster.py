"""`make cluster` (python -m deploy.cluster --servers N): a whole cluster on this machine, in the foreground.

redis-server, N Sign2Sound servers (gunicorn, one worker each) on consecutive ports after the proxy's, one
cluster worker (python -m app.worker: training jobs and videos) and nginx (deploy/nginx.conf) on --port. Ctrl-C (or
SIGTERM) stops them all; if any of them dies, the rest are stopped too and the exit status says so. Redis keeps its
data (append-only file) and nginx its run files under --run-dir. The tests start the same processes through
the functions here.
"""
from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from ml.config import ROOT, load_config, project_path

NGINX_TEMPLATE = ROOT / "deploy" / "nginx.conf"


def find(binary: str) -> str | None:
    """A system binary; nginx lives in /usr/sbin, often not on a user's PATH."""
    return shutil.which(binary) or next((str(p) for p in (Path("/usr/sbin") / binary,) if p.exists()), None)


def redis_command(port: int, data_dir: Path) -> list[str]:
    # Append-only: job history, models and the live model survive a Redis restart.
    return [find("redis-server"), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data_dir),
            "--appendonly", "yes", "--save", "", "--daemonize", "no", "--loglevel", "warning"]


def nginx_config(listen: str, upstreams: list[str], run_dir: Path) -> str:
    servers = "\n".join(f"        server {u} max_fails=1 fail_timeout=10s;" for u in upstreams)
    return (NGINX_TEMPLATE.read_text().replace("@SERVERS@", servers).replace("@LISTEN@", listen)
            .replace("@RUN@", str(run_dir)))


def nginx_command(config_path: Path, run_dir: Path) -> list[str]:
    return [find("nginx"), "-e", str(run_dir / "error.log"), "-p", str(run_dir), "-c", str(config_path)]


def server_command() -> list[str]:
    return [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "deploy" / "gunicorn.conf.py")]


def worker_command() -> list[str]:
    return [sys.executable, "-m", "app.worker"]


def write_nginx_config(listen: str, upstreams: list[str], run_dir: Path) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / "nginx.conf"
    path.write_text(nginx_config(listen, upstreams, run_dir))
    return path


def wait_port(port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return True
        time.sleep(0.2)
    return False


def main() -> int:
    config = load_config()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--servers", type=int, default=2)
    ap.add_argument("--port", type=int, default=int(config["port"]), help="the proxy's port")
    ap.add_argument("--redis-port", type=int, default=6379)
    ap.add_argument("--run-dir", default=str(project_path(config["instance_dir"]) / "cluster"))
    args = ap.parse_args()
    missing = [b for b in ("redis-server", "nginx") if not find(b)]
    if missing:
        print(f"cluster: {' and '.join(missing)} missing: run scripts/install_system.sh as root", file=sys.stderr)
        return 2
    run_dir = Path(args.run_dir).resolve()
    (run_dir / "redis").mkdir(parents=True, exist_ok=True)
    url = f"redis://127.0.0.1:{args.redis_port}/0"
    # One secret key for all servers: an admin's login stays good when the proxy moves them to another server.
    env = {**os.environ, "SIGN2SOUND_MESSAGE_QUEUE": url, "SIGN2SOUND_HOST": "127.0.0.1",
           "SIGN2SOUND_TRUSTED_PROXIES": "1",
           "SIGN2SOUND_SECRET_KEY": os.environ.get("SIGN2SOUND_SECRET_KEY") or secrets.token_hex(32)}
    ports = [args.port + 1 + i for i in range(args.servers)]
    procs: list[tuple[str, subprocess.Popen]] = []

    def start(name: str, cmd: list[str], **kw) -> None:
        print(f"cluster: {name}: {' '.join(cmd)}", flush=True)
        procs.append((name, subprocess.Popen(cmd, cwd=ROOT, start_new_session=True, **kw)))

    for sig in (signal.SIGINT, signal.SIGTERM):  # SIGINT too: a shell script's `&` may have started us ignoring it
        signal.signal(sig, _interrupt)
    status = 0
    try:
        start("redis", redis_command(args.redis_port, run_dir / "redis"))
        if not wait_port(args.redis_port, 10):
            raise RuntimeError(f"redis-server did not listen on {args.redis_port}")
        for port in ports:
            start(f"server :{port}", server_command(), env={**env, "SIGN2SOUND_PORT": str(port)})
        start("worker", worker_command(), env=env)
        for port in ports:
            if not wait_port(port, 120):
                raise RuntimeError(f"the server on {port} did not start")
        conf = write_nginx_config(f"{config['host']}:{args.port}", [f"127.0.0.1:{p}" for p in ports], run_dir)
        start("nginx", nginx_command(conf, run_dir))
        print(f"cluster: serving http://{config['host']}:{args.port} ({args.servers} servers, 1 worker); "
              "Ctrl-C stops all", flush=True)
        while True:
            for name, proc in procs:
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited with {proc.returncode}")
            time.sleep(0.5)
    except KeyboardInterrupt:
        print("cluster: stopping", flush=True)
    except RuntimeError as exc:
        print(f"cluster: {exc}; stopping the rest", file=sys.stderr, flush=True)
        status = 1
    finally:
        stop_all([p for _, p in reversed(procs)])
    return status


def _interrupt(*_) -> None:
    raise KeyboardInterrupt


def stop_all(procs: list[subprocess.Popen], grace_s: float = 10) -> None:
    """SIGTERM each (its process group: gunicorn's worker, a job's trainer), SIGKILL what is left after grace."""
    for proc in procs:
        _signal(proc, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for proc in procs:
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            _signal(proc, signal.SIGKILL)
            proc.wait()


def _signal(proc: subprocess.Popen, sig: int) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass


if __name__ == "__main__":
    sys.exit(main())
