"""Shared fixtures: the real data (skipped with a reason when absent) and real servers on 127.0.0.1.

Starting a server costs seconds, so the tests share three, one each for the whole session: `server` (the
production server, as `make run` serves it), `admin_server` and `server_without_speech`. A test that needs a
setting of its own, a fresh instance folder or a restart starts its own with `make_server`.
"""
from __future__ import annotations

import contextlib
import functools
import io
import itertools
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from ml.config import ROOT, data_path, load_config

SHIPPED_CHECKPOINT = ROOT / "checkpoints" / "best_model.pth"
# How long a test waits for a subprocess, a server start or a training job: a guard against a hang, never a
# speed check. On the 2-core machine shared by several test runs, work that imports torch and MediaPipe took
# ten times its idle time (a 6 s `ml.evaluate` call took 119 s of the 120 s it was allowed: issue 12).
HANG_GUARD_S = 600
# Test clients send frames at up to CLIENT_FPS, one in flight, and wait for each reply: at 20 a second (near the
# page's 15) the protocol tests spent most of their time sleeping between frames. The servers of a test session
# admit TEST_MAX_FPS a client (config.yaml: 30), so no paced frame is refused (the rate limit has its own
# server in tests/test_realtime.py).
CLIENT_FPS = 100
TEST_MAX_FPS = 120


# Adaptations run niced in the product (config.yaml: live frames first). Under test the CPU they would yield to is
# another test's, so the test waiting on one waited for its neighbours: on 2 cores a niced adaptation got about a
# tenth of a core while the other test worker was busy. Tests run them at their own priority; tests/test_calibration.py
# checks the product's niceness. Training jobs stay niced: the long ones tests start run until cancelled or killed,
# and at full priority they would take the CPU from every other test.
TEST_PRIORITY = {"SIGN2SOUND_CALIBRATION_NICE": "0"}


def pytest_configure(config) -> None:
    os.environ["SIGN2SOUND_FRAMES_MAX_FPS"] = str(TEST_MAX_FPS)  # every server a test starts inherits these
    os.environ.update(TEST_PRIORITY)
    if getattr(config.option, "numprocesses", None) and not hasattr(config, "workerinput"):
        return  # pytest-xdist's controller: it runs no test
    # Tests that train or adapt in this process use one torch thread, as the servers do (config.yaml:
    # model.torch_threads): beside the other test process on 2 cores, torch's thread per core spun waiting for a
    # core and took several times the CPU (test_personal: 17 s idle, over 30 s with the other process busy).
    import torch

    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def config() -> dict:
    return load_config()


def shared_data(name: str) -> Path:
    """Path of data set `name` (a key of config.yaml's data section); skips the test when it is absent."""
    path = data_path(load_config(), name)
    if not path.exists():
        pytest.skip(f"real data {path} is absent (expected ../shared/data beside the checkout)")
    return path


def kaggle_photos(label: str, count: int) -> list[Path]:
    """The first `count` Kaggle photos of class `label`, in file-name order (skips when the data is absent)."""
    return [p for p, c in _image_folder(shared_data("kaggle")) if c == label][:count]


@functools.lru_cache(maxsize=4)
def _image_folder(folder: Path) -> list[tuple[Path, str]]:
    """The listing of a read-only data folder, once per process (the Kaggle one holds ~6,000 photos)."""
    from ml.landmarks import list_image_folder

    return list_image_folder(folder)


def webcam_jpeg(photo: Path, width: int = 480, quality: int = 70) -> bytes:
    """A real photo as the page sends a webcam frame: 4:3, `width` wide (edges extended), JPEG."""
    import cv2

    from ml.landmarks import read_image

    height = width * 3 // 4
    image = cv2.resize(read_image(photo)[3:-3, 3:-3], (height, height))  # Kaggle photos have a blue 2 px frame
    side = (width - height) // 2
    image = cv2.copyMakeBorder(image, 0, 0, side, width - height - side, cv2.BORDER_REPLICATE)
    return cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])[1].tobytes()


def cli_in_process(main, *args) -> subprocess.CompletedProcess:
    """A command line's `main(argv)` run in this process, as `python -m` would run it minus the interpreter's start
    (seconds, importing torch): its exit code, stdout and stderr. Each CLI's tests still run it once for real, in a
    subprocess (`python -m ...`)."""
    import torch

    out, err = io.StringIO(), io.StringIO()
    threads = torch.get_num_threads()  # a CLI sets its own (ml.train's --threads): the next tests keep this process's
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in args])
        except SystemExit as exit_:  # argparse refuses with exit code 2
            code = exit_.code
        finally:
            torch.set_num_threads(threads)
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


def free_port() -> int:
    """A loopback port nothing listens on, taken from this test process's own block below the kernel's ephemeral
    range: `make test` runs several test processes at once (pytest-xdist), and a port the kernel hands out for
    bind(0) can be handed again, to another process or to a client's outgoing connection, before the server that
    was meant to have it binds it."""
    while True:
        port = next(_PORTS)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue  # someone else's: take the next
            return port


def _port_block() -> "itertools.count":
    worker = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
    start = PORTS_FROM + PORTS_PER_PROCESS * (worker % 8)
    return itertools.count(start + random.randrange(PORTS_PER_PROCESS // 2))  # two suites at once rarely meet


# 16000-31999: eight blocks of 2,000 below Linux's ephemeral ports (32768 up), so no outgoing connection takes one.
PORTS_FROM, PORTS_PER_PROCESS = 16000, 2000
_PORTS = _port_block()


# Each of these servers is started once per test process that uses it: `make test` (pytest-xdist --dist loadgroup)
# runs every file that uses one in the same process, and each other file whole in one process (as --dist loadfile).
PER_PROCESS_SERVERS = ("admin_server", "server_without_speech")


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's own hook reads the groups
def pytest_collection_modifyitems(items) -> None:
    uses: dict[Path, set[str]] = {}
    for item in items:
        uses.setdefault(item.path, set()).update(getattr(item, "fixturenames", ()))
    for item in items:
        shared = [name for name in PER_PROCESS_SERVERS if name in uses[item.path]]
        item.add_marker(pytest.mark.xdist_group(shared[0] if shared else item.path.name))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A failing test's report carries the log tail of every server running then: the next failure explains
    itself (a server-side traceback, a slow start) without a rerun."""
    report = (yield).get_result()
    if report.failed:
        for server in Server.running:
            report.sections.append((f"server log {server.url} (last {LOG_TAIL_LINES} lines)",
                                    "\n".join(server.log().splitlines()[-LOG_TAIL_LINES:])))


LOG_TAIL_LINES = 80


class Server:
    """`python wsgi.py` in a subprocess on a free loopback port, with its own instance folder; with
    `gunicorn=True` the production server instead (deploy/gunicorn.conf.py), in its own process group so
    that kill(-9) ends its worker too."""

    running: list["Server"] = []  # started and not yet stopped, for failure reports

    def __init__(self, instance_dir: Path, env: dict | None = None, gunicorn: bool = False, root: Path = ROOT):
        self.gunicorn = gunicorn
        self.root = root  # the copy of the project it runs from (bench.load_ab serves an earlier commit's)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.instance_dir = instance_dir
        self.env = {**os.environ, "SIGN2SOUND_HOST": "127.0.0.1", "SIGN2SOUND_PORT": str(self.port),
                    "SIGN2SOUND_INSTANCE_DIR": str(instance_dir), "PYTHONUNBUFFERED": "1", **(env or {})}
        self.log_path = instance_dir / f"server-{self.port}.log"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = HANG_GUARD_S) -> "Server":
        self.instance_dir.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")
        cmd = ([sys.executable, "-m", "gunicorn", "-c", str(self.root / "deploy" / "gunicorn.conf.py")] if self.gunicorn
               else [sys.executable, str(self.root / "wsgi.py")])
        self.proc = subprocess.Popen(cmd, cwd=self.root, env=self.env, stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=self.gunicorn)
        Server.running.append(self)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log()}")
            try:
                urllib.request.urlopen(self.url + "/api/status", timeout=1).read()
                return self
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"server did not answer within {timeout}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def status(self) -> dict:
        """GET /api/status: the live model, clients connected, people being read, ..."""
        return json.load(urllib.request.urlopen(self.url + "/api/status", timeout=10))

    @property
    def serving_pid(self) -> int:
        """The process that serves (and holds the memory): gunicorn's one worker, or `python wsgi.py` itself."""
        if not self.gunicorn:
            return self.proc.pid
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()
        return int(children[0])

    def stop(self, kill: bool = False) -> None:
        if self.gunicorn and kill and self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)  # the arbiter and its worker, at once
        if self.proc and self.proc.poll() is None:
            self.proc.kill() if kill else self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc:
            self._log.close()
        if self in Server.running:
            Server.running.remove(self)


@pytest.fixture
def make_server(tmp_path):
    """Factory: make_server(env={...}) -> a started Server; all are stopped after the test."""
    servers = []

    def make(env: dict | None = None, instance_dir: Path | None = None, gunicorn: bool = False) -> Server:
        if not SHIPPED_CHECKPOINT.exists():
            pytest.fail(f"{SHIPPED_CHECKPOINT} is missing: the shipped model is part of the repository")
        server = Server(instance_dir or tmp_path / "instance", env, gunicorn=gunicorn).start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


# The shared servers run without the admin (whatever the environment says), so a test can rely on it being off.
NO_ADMIN = {"SIGN2SOUND_ADMIN_PASSWORD": "", "SIGN2SOUND_ADMIN_PASSWORD_HASH": ""}


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    """One real server for every test that needs no setting of its own: the production server that `make run`
    starts (gunicorn, deploy/gunicorn.conf.py), default settings, its own instance folder, no admin. Tests leave
    it as they found it (clients closed, nothing activated)."""
    s = Server(tmp_path_factory.mktemp("instance"), env=NO_ADMIN, gunicorn=True).start()
    yield s
    s.stop()


@pytest.fixture(scope="session")
def admin_server(tmp_path_factory):
    """A shared server with the admin enabled (tests/admin_client.py's password), served as `server` is. Tests leave
    the shipped model live and no job running; they may add jobs, models and recorded data sets (each test reads
    its own)."""
    from tests.admin_client import ADMIN_ENV

    s = Server(tmp_path_factory.mktemp("instance"), env=ADMIN_ENV, gunicorn=True).start()
    yield s
    s.stop()


@pytest.fixture(scope="session")
def server_without_speech(tmp_path_factory):
    """A shared server with server speech turned off (the page and the API then say the browser speaks), served as
    `server` is."""
    s = Server(tmp_path_factory.mktemp("instance"), env={**NO_ADMIN, "SIGN2SOUND_SPEECH_ENABLED": "false"},
               gunicorn=True).start()
    yield s
    s.stop()
