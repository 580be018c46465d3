"""Cluster mode for real: a redis-server on a free port, two servers under gunicorn (each with its own instance
folder, so models can only travel through Redis), one worker (python -m app.worker: training and videos) and nginx with
deploy/nginx.conf in front, all on 127.0.0.1, started and stopped here (deploy.cluster builds the commands).

The tests run in file order on one cluster: the worker and Redis are stopped in the middle and brought back,
the worker is killed for good once the tests that need it have run, and the last test kills a server for good.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from deploy.cluster import find, nginx_command, redis_command, wait_port, worker_command, write_nginx_config
from ml.config import ROOT
from tests.admin_client import ADMIN_ENV, AdminClient
from tests.conftest import Server, free_port, kaggle_photos, webcam_jpeg
from tests.test_jobs import gone, wait_for, write_tiny_set
from tests.test_realtime import LiveClient, spell
from tests.test_transcribe import WORDS, follow, post, spelled_parts, write_video


TINY = {"datasets": ["tiny"], "epochs": 1, "lr": 0.01, "batch_size": 32}
LONG = {"datasets": ["tiny"], "epochs": 500, "lr": 0.01, "batch_size": 32}  # far longer than any test


class Proc:
    """A background process with its log in `log_path` (redis-server, the worker, nginx)."""

    def __init__(self, cmd: list[str], log_path: Path, env: dict | None = None):
        self.cmd, self.log_path, self.env = cmd, log_path, env
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Proc":
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.cmd, cwd=ROOT, env=self.env, stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        return self

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if self.proc:
            self._log.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


class Cluster:
    """redis-server, two servers, a worker and nginx, on free ports under `root` (bench.load uses it too)."""

    def __init__(self, root: Path, tiny_sets: bool = True):
        self.root = root
        self.redis_port = free_port()
        self.url = f"redis://127.0.0.1:{self.redis_port}/0"
        (root / "redis").mkdir(parents=True)
        self.redis = Proc(redis_command(self.redis_port, root / "redis"), root / "redis.log")
        env = {**ADMIN_ENV, "SIGN2SOUND_MESSAGE_QUEUE": self.url, "SIGN2SOUND_TRUSTED_PROXIES": "1",
               "SIGN2SOUND_SECRET_KEY": "cluster-test",  # one key: a login is good on every server
               "SIGN2SOUND_CALIBRATION_STEPS": "40"}  # a short adaptation (test_calibration's FAST)
        self.env = env
        for name in ("server1", "server2", "worker") if tiny_sets else ():
            write_tiny_set(root / name)  # recorded sets are per machine; models are not
        self.servers = [Server(root / name, env, gunicorn=True) for name in ("server1", "server2")]
        self.worker = Proc(worker_command(), root / "worker.log",
                           {**os.environ, **env, "SIGN2SOUND_INSTANCE_DIR": str(root / "worker")})
        self.proxy_port = free_port()
        self.proxy = f"http://127.0.0.1:{self.proxy_port}"
        conf = write_nginx_config(f"127.0.0.1:{self.proxy_port}", [s.url.removeprefix("http://") for s in self.servers],
                                  root / "nginx")
        self.nginx = Proc(nginx_command(conf, root / "nginx"), root / "nginx.log")

    def start(self) -> None:
        self.redis.start()
        assert wait_port(self.redis_port, 10), self.redis.log()
        threads = [threading.Thread(target=s.start, kwargs={"timeout": 180}) for s in self.servers]
        for t in threads:
            t.start()
        self.worker.start()
        for t in threads:
            t.join()
        assert all(s.proc.poll() is None for s in self.servers), self.logs()
        self.nginx.start()
        assert wait_port(self.proxy_port, 10), self.nginx.log()

    def stop(self) -> None:
        self.nginx.stop()
        self.worker.stop(signal.SIGKILL)
        for server in self.servers:
            server.stop(kill=True)
        self.redis.stop()

    def logs(self) -> str:
        parts = [f"--- {p.log_path.name}\n{p.log()[-3000:]}" for p in (self.worker, self.redis, self.nginx)]
        return "\n".join(parts + [f"--- {s.port}\n{s.log()[-3000:]}" for s in self.servers])


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    if not (find("redis-server") and find("nginx")):
        pytest.skip("redis-server and nginx are not installed (scripts/install_system.sh as root installs them)")
    c = Cluster(tmp_path_factory.mktemp("cluster"))
    try:
        c.start()
        yield c
    finally:
        c.stop()


@pytest.fixture(scope="module")
def frames() -> dict[str, list[bytes]]:
    return {label: [webcam_jpeg(p) for p in kaggle_photos(label, 1)] for label in ["F", "L", "Y", "space", "nothing"]}


@pytest.fixture(scope="module")
def admins(cluster):
    return [AdminClient(s.url).login() for s in cluster.servers]


def clients_on(server: Server) -> int:
    return server.status()["clients"]


def word_of(results: list[dict]) -> list[str]:
    return [e["value"] for r in results for e in r["events"] if e["type"] == "word"]


def test_the_embedded_default_never_imports_redis_or_rq():
    """No message_queue: today's single process, SQLite and the in-process runner; none of the cluster's modules
    is loaded (python-socketio itself imports the redis package when it is installed, and only uses it when
    told to)."""
    code = ("import sys, wsgi; from app.admin.jobs import JobRunner; from app.admin.db import Database; "
            "assert isinstance(wsgi.app.extensions['jobs'], JobRunner), wsgi.app.extensions['jobs']; "
            "assert isinstance(wsgi.app.extensions['admin_db'], Database); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'rq' or "
            "m in ('app.cluster', 'app.cluster.store', 'app.worker')))")
    env = {**os.environ, "SIGN2SOUND_MESSAGE_QUEUE": "", "SIGN2SOUND_INSTANCE_DIR": str(ROOT / "instance" / "no-redis")}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_the_redis_store_keeps_the_same_records_as_sqlite(cluster, tmp_path):
    """app.cluster.store.RedisStore stands in for app.admin.db.Database: the same calls give the same records."""
    from app.admin.db import Database
    from app.cluster.store import RedisStore, connect

    redis_store, sqlite = RedisStore(connect(cluster.url.replace("/0", "/1"))), Database(tmp_path / "s.db")
    for db in (redis_store, sqlite):
        a = db.add_job({"epochs": 1})
        b = db.add_job({"epochs": 2})
        db.update_job(a, status="running", pid=42, progress=[{"epoch": 1}], log="x\ny")
        db.update_job(b, status="failed", error="boom", metrics={"val_acc": 0.5})
        db.update_job(999, status="failed")  # no such job: nothing happens
        with pytest.raises(KeyError):
            db.update_job(a, nonsense=1)
        db.add_model("job-1", "/m/1/best_model.pth", a, {"val_acc": 0.9})
        db.set_setting("active_model", "job-1")
    strip = lambda job: {k: v for k, v in job.items() if k != "created_at"}  # noqa: E731
    assert [strip(j) for j in redis_store.jobs()] == [strip(j) for j in sqlite.jobs()]
    assert [strip(j) for j in redis_store.jobs("running")] == [strip(j) for j in sqlite.jobs("running")]
    assert redis_store.job(999) is None and sqlite.job(999) is None
    assert [strip(m) for m in redis_store.models()] == [strip(m) for m in sqlite.models()]
    assert redis_store.get_setting("active_model") == sqlite.get_setting("active_model") == "job-1"
    assert redis_store.get_setting("missing", "d") == "d"
    redis_store.put_blob("personal/abc.pth", b"\x00bytes")
    assert redis_store.get_blob("personal/abc.pth") == b"\x00bytes" and redis_store.get_blob("personal/x") is None
    for bad in ("../x", "/abs", "", "a b"):
        with pytest.raises(ValueError):
            redis_store.put_blob(bad, b"")


def test_a_client_through_the_proxy_spells_a_word(cluster, frames):
    # polling first, then the upgrade: every request of the session must reach the same server (ip_hash)
    client = LiveClient(cluster.proxy, transports=("polling", "websocket"))
    try:
        assert word_of(spell(client, frames, "FLY")) == ["FLY"]
        assert sorted(clients_on(s) for s in cluster.servers) == [0, 1]  # the session lives on one server
    finally:
        client.close()
    assert requests.get(cluster.proxy + "/", timeout=10).status_code == 200


def test_frame_replies_never_travel_through_redis(cluster, frames):
    """Each server answers its own clients straight: a reply through the queue would reach every server (N
    servers x all frames) and cost a Redis round trip per frame. Job progress does go through it."""
    import redis

    pubsub = redis.Redis.from_url(cluster.url).pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe("flask-socketio")  # Flask-SocketIO's default channel
    client = LiveClient(cluster.servers[0].url)
    try:
        assert all(r["letter"] == "F" for r in client.hold(frames["F"][0], 5))
    finally:
        client.close()
    messages, deadline = [], time.monotonic() + 2  # all that was published while the frames were answered
    while time.monotonic() < deadline:
        message = pubsub.get_message(timeout=0.2)  # None for the subscribe confirmation, too
        if message is not None:
            messages.append(message["data"])
    pubsub.close()
    assert not [m for m in messages if b'"result"' in m], messages[:3]


def test_a_job_started_on_server_2_runs_on_the_worker_and_its_progress_reaches_server_1(cluster, admins):
    pushed, finished = [], threading.Event()

    def on_job(job):
        pushed.append(job)
        if job["status"] in ("succeeded", "failed"):
            finished.set()

    events = admins[0].socket("/admin", {"job": on_job})
    try:
        job_id = admins[1].start_job(**TINY)
        assert finished.wait(180), (admins[0].job(job_id), cluster.logs())
    finally:
        events.disconnect()
    job = admins[0].job(job_id)
    assert job["status"] == "succeeded", (job, cluster.logs())
    assert [j["status"] for j in pushed if j["id"] == job_id][0] in ("queued", "running")
    assert any(j["status"] == "running" and j["progress"] for j in pushed)  # epoch progress, pushed live
    assert [p["epoch"] for p in job["progress"]] == [1]
    assert job == admins[1].job(job_id)  # one history, seen alike from both servers
    # the worker trained it into its own folder; no server has the file until it is used
    assert (cluster.root / "worker" / "cluster-models" / str(job_id) / "best_model.pth").is_file()
    assert not (cluster.root / "server1" / "cluster-models" / str(job_id)).exists()
    for admin in admins:
        assert f"job-{job_id}" in [m["id"] for m in admin.get("/api/admin/models").json()["models"]]


def test_activating_a_model_on_one_server_changes_the_next_results_on_the_other(cluster, admins, frames):
    model = next(m["id"] for m in admins[0].get("/api/admin/models").json()["models"] if m["id"] != "shipped")
    client = LiveClient(cluster.servers[1].url)
    try:
        assert client.hold(frames["F"][0], 1)[0]["model"] == "shipped"
        r = admins[0].post(f"/api/admin/models/{model}/activate")
        assert r.status_code == 200, r.text
        activated = time.monotonic()
        # frames at the page's pace until server 2 answers with the new model (seconds: a deadline, not a speed
        # check; docs/DEPLOYMENT.md gives the measured delay)
        while client.hold(frames["F"][0], 1)[0]["model"] != model:
            assert time.monotonic() - activated < 30, cluster.logs()
        print(f"model live on the other server {time.monotonic() - activated:.2f} s after activation")
        assert admins[1].get("/api/admin/models").json()["active"] == model
        # the checkpoint reached server 2 through Redis
        assert (cluster.root / "server2" / "cluster-models" / model.removeprefix("job-") / "best_model.pth").is_file()
        assert admins[1].post("/api/admin/models/shipped/activate").status_code == 200
        assert wait_for(lambda: client.hold(frames["F"][0], 1)[0]["model"] == "shipped")
    finally:
        client.close()


def test_a_job_queued_or_running_on_the_worker_is_cancelled_from_another_server(cluster, admins):
    running = admins[0].start_job(**LONG)
    queued = admins[0].start_job(**LONG)  # one worker: this one waits
    job = admins[1].wait_job(running, until=("running",), need_pid=True)
    assert admins[1].job(queued)["status"] == "queued"
    for job_id in (queued, running):
        r = admins[1].post(f"/api/admin/jobs/{job_id}/cancel")
        assert r.status_code == 200, r.text
    for admin in admins:
        assert admin.wait_job(running, timeout=30)["status"] == "cancelled"
        assert admin.job(queued)["status"] == "cancelled"
    assert wait_for(lambda: gone(job["pid"]), 10)
    assert admins[0].post(f"/api/admin/jobs/{running}/cancel").status_code == 409


@pytest.fixture(scope="module")
def spelled(tmp_path_factory) -> dict[str, Path]:
    """tests/test_transcribe.py's video of FULL FLY (11 s: read over seconds), and one of FLY alone (5 s)."""
    folder = tmp_path_factory.mktemp("videos")
    return {"long": write_video(folder / "long.mp4", spelled_parts()),
            "short": write_video(folder / "short.mp4", spelled_parts(WORDS[1:]))}


def test_videos_are_read_by_the_worker_bounded_cluster_wide_and_served_by_every_server(cluster, spelled):
    """Cluster mode's "Transcribe a video": the upload goes through Redis to the worker, which reads it (not the
    server that took it); every server answers its progress and results (the proxy may route a poll anywhere); a
    worker killed mid-video fails that video only; transcribe.max_jobs counts the videos of all servers."""
    import redis

    r = redis.Redis.from_url(cluster.url)
    status, job = post(cluster.servers[0].url, spelled["long"].read_bytes())
    assert status == 202, job
    assert wait_for(lambda: json.loads(r.hget(f"sign2sound:video:{job['id']}", "status")) == "reading", 120)
    cluster.worker.stop(signal.SIGKILL)
    lost = follow(cluster.servers[1].url, job["id"])
    assert (lost["status"], lost["error"]["code"]) == ("failed", "video_worker_lost"), lost
    # its place is free: max_jobs (2) videos wait for a worker, one through the proxy; one more, on a server that
    # holds at most one of them, is refused
    waiting = [post(base, spelled["short"].read_bytes()) for base in (cluster.proxy, cluster.servers[0].url)]
    assert [status for status, _ in waiting] == [202, 202], waiting
    status, busy = post(cluster.servers[1].url, spelled["short"].read_bytes())
    assert (status, busy["error"]["code"]) == (429, "video_busy"), busy
    cluster.worker.start()  # the waiting videos were kept for it
    for _, job in waiting:
        done = follow(cluster.proxy, job["id"])
        assert done["status"] == "done" and done["transcript"]["text"] == WORDS[1], (done, cluster.logs())
        reader = r.hget(f"sign2sound:video:{job['id']}", "worker")
        assert json.loads(reader).split("@")[0] == str(cluster.worker.proc.pid)  # the worker's process read it
        for server in cluster.servers:
            assert follow(server.url, job["id"]) == done
            srt = requests.get(f"{server.url}/api/videos/{job['id']}/captions.srt", timeout=10)
            assert srt.text.splitlines()[2] == WORDS[1]
            assert done["speech"] and requests.get(f"{server.url}/api/videos/{job['id']}/speech.wav",
                                                   timeout=10).content[:4] == b"RIFF"
    assert all(list((server.instance_dir / "videos").iterdir()) == [] for server in cluster.servers)
    assert r.keys("sign2sound:blob:videos/*.upload") == [] and r.zcard("sign2sound:videos-active") == 0
    # over nginx's usual body limit, under the server's: the server refuses it, in words
    status, reply = post(cluster.proxy, b"not a video\n" * 500_000)
    assert (status, reply["error"]["code"]) == (400, "not_video"), reply


def test_a_worker_killed_mid_job_leaves_the_job_failed_on_every_server(cluster, admins):
    job_id = admins[0].start_job(**LONG)
    job = admins[1].wait_job(job_id, until=("running",), need_pid=True)
    assert wait_for(lambda: admins[1].job(job_id)["progress"], 120)  # training, not starting
    cluster.worker.stop(signal.SIGKILL)
    for admin in admins:
        done = admin.wait_job(job_id, timeout=30)
        assert done["status"] == "failed" and "worker" in done["error"], done
    assert wait_for(lambda: gone(job["pid"]), 10)  # the trainer died with its worker
    # The worker stays down: no later test here needs one (personal models are made by the servers), and its start
    # is seconds of CPU. A test added below that does must start it first.


def test_personal_models_are_bounded_cluster_wide_and_each_server_caches_what_it_uses(cluster, tmp_path):
    """Two PersonalStores (two servers' folders) on one Redis: an entry committed on one is fetched by the other,
    a copy is refreshed when the entry was calibrated again elsewhere, the count and byte bounds evict the
    least recently used across both, every part carries the TTL backstop, and a forget on one reaches the other's
    copy at its sweep."""
    from app.live.frames import FrameError
    from app.live.personal import KEY, PersonalStore, key_hash, new_key
    from app.cluster.store import PERSONAL_INDEX, RedisStore, connect
    from tests.conftest import SHIPPED_CHECKPOINT

    shared = RedisStore(connect(cluster.url.replace("/0", "/2")))
    one, two = (PersonalStore(tmp_path / name, 2, 10 * 2**20, shared=shared, ttl_s=3600) for name in ("1", "2"))

    def use(store, key):  # as a connect does
        store.sync(key)
        return store.load(key)

    def commit(store, key, samples=b"landmarks"):
        staged = store.staging()
        (staged / "model.pth").write_bytes(SHIPPED_CHECKPOINT.read_bytes())
        (staged / "samples.npz").write_bytes(samples)
        store.commit(key, staged)

    a, b, c = (new_key() for _ in range(3))
    assert all(KEY.match(k) for k in (a, b, c))
    commit(one, a)
    assert use(two, a).classes and (tmp_path / "2" / key_hash(a) / "samples.npz").read_bytes() == b"landmarks"
    commit(one, a, b"calibrated again")  # server 2's copy is stale now: its next use fetches the new one
    use(two, a)
    assert (tmp_path / "2" / key_hash(a) / "samples.npz").read_bytes() == b"calibrated again"
    commit(two, b)
    use(one, a)  # a is now the most recently used: b goes first
    commit(one, c)  # a third entry in the cluster: past max 2
    assert {n.decode() for n in shared.r.zrange(PERSONAL_INDEX, 0, -1)} == {key_hash(a), key_hash(c)}
    with pytest.raises(FrameError, match="no personal model"):
        use(two, b)  # evicted by server 1; server 2's copy is dropped on use
    assert not (tmp_path / "2" / key_hash(b)).exists()
    # bytes: a bound smaller than two entries leaves only the newest
    small = PersonalStore(tmp_path / "3", 10, SHIPPED_CHECKPOINT.stat().st_size + 100, shared=shared, ttl_s=3600)
    commit(small, b)
    assert [n.decode() for n in shared.r.zrange(PERSONAL_INDEX, 0, -1)] == [key_hash(b)]
    # TTL backstop: every part expires ttl_s after the last use
    assert 3500 < shared.r.ttl(f"sign2sound:blob:personal/{key_hash(b)}/model.pth") <= 3600
    # forget on one server: gone from Redis (forget_shared, which a forget calls next, off the frames' threads)
    # and from its folder at once, from the other's folder at its sweep
    commit(one, a)
    use(two, a)
    assert one.delete(a) and shared.personal_names([key_hash(a)])
    one.forget_shared()
    assert not shared.personal_names([key_hash(a)])
    two.sweep()
    assert not (tmp_path / "2" / key_hash(a)).exists()
    # Redis unreachable: nothing is saved without it, a key this server has no copy of says so
    down = PersonalStore(tmp_path / "5", 2, 10 * 2**20, shared=RedisStore(connect(f"redis://127.0.0.1:{free_port()}")),
                         ttl_s=3600)
    with pytest.raises(FrameError) as refused:
        commit(down, c)
    assert refused.value.code == "adapt_failed" and "not saved" in refused.value.message and not down.entries()
    with pytest.raises(FrameError) as unavailable:
        use(down, c)
    assert unavailable.value.code == "personal_unavailable"


def test_a_personal_model_made_on_server_1_reads_on_server_2_and_a_forget_there_removes_it_everywhere(cluster,
                                                                                                     frames):
    import hashlib

    import redis

    from tests.test_calibration import Client, photos

    r = redis.Redis.from_url(cluster.url)
    one, two = cluster.servers
    maker = Client(one.url)
    maker.calibrate("V", photos("V", 0, 6))
    key = maker.adapt()["key"]
    maker.close()
    name = hashlib.sha256(key.encode()).hexdigest()
    assert r.zscore("sign2sound:personal", name) is not None
    assert not (two.instance_dir / "personal" / name).exists()  # server 2 has no copy until the key is used there

    # Redis down: server 1 (its copy) keeps the personal model; server 2 (none) says so and reads shared
    cluster.redis.stop()
    try:
        cached = Client(one.url, key=key)
        assert cached.result(frames["F"][0])["model"] == "personal" and cached.events["error"].empty()
        cached.close()
        lacking = Client(two.url, key=key)
        error = lacking.next("error")
        assert error["code"] == "personal_unavailable" and "unreachable" in error["message"], error
        assert lacking.result(frames["F"][0])["model"] == "shipped"
        lacking.close()
    finally:
        cluster.redis.start()
        assert wait_port(cluster.redis_port, 10), cluster.redis.log()

    # Redis back: server 2 fetches the model (recovered by itself, no restart)
    def personal_on_two() -> bool:
        client = Client(two.url, key=key)
        try:
            return client.result(frames["F"][0])["model"] == "personal" and client.events["error"].empty()
        finally:
            client.close()

    assert wait_for(personal_on_two, 30), cluster.logs()
    assert (two.instance_dir / "personal" / name / "model.pth").is_file()

    # forget on server 2: out of Redis and server 2's folder at once, out of server 1's at its sweep
    forgetter = Client(two.url, key=key)
    assert forgetter.call("forget") == {"model": "shipped"}
    forgetter.close()
    assert r.zscore("sign2sound:personal", name) is None and not r.keys(f"sign2sound:blob:personal/{name}/*")
    assert not (two.instance_dir / "personal" / name).exists()
    assert wait_for(lambda: not (one.instance_dir / "personal" / name).exists(), 30)
    gone = Client(one.url, key=key)
    assert gone.next("error")["code"] == "unknown_key"
    assert gone.result(frames["F"][0])["model"] == "shipped"
    gone.close()


def test_with_redis_down_frames_are_answered_and_the_admin_says_so_then_recovers(cluster, admins, frames):
    client = LiveClient(cluster.servers[0].url)
    replies, stop = [], threading.Event()

    def stream():
        while not stop.is_set():
            replies.append(client.send(frames["L"][0]))

    streamer = threading.Thread(target=stream)
    streamer.start()
    try:
        history = admins[0].get("/api/admin/jobs").json()["jobs"]
        cluster.redis.stop()
        sent_before = len(replies)
        down = admins[0].get("/api/admin/jobs")
        assert down.status_code == 503 and down.json()["code"] == "queue_unreachable", down.text
        assert "unreachable" in down.json()["error"] and "Redis" in down.json()["error"]
        assert admins[1].post("/api/admin/jobs", TINY).status_code == 503
        status, reply = post(cluster.proxy, b"\0" * 1000)  # a video is refused in words the page shows
        assert (status, reply["error"]["code"]) == (503, "video_queue_down"), reply
        polled = requests.get(f"{cluster.proxy}/api/videos/any-id", timeout=10)
        assert (polled.status_code, polled.json()["error"]["code"]) == (503, "video_queue_down")
        assert wait_for(lambda: len(replies) > sent_before + 20)  # frames keep coming back while Redis is down
        cluster.redis.start()
        assert wait_for(lambda: admins[0].get("/api/admin/jobs").status_code == 200, 30)
        assert admins[0].get("/api/admin/jobs").json()["jobs"] == history  # nothing lost (append-only file)
        assert wait_for(lambda: admins[1].get("/api/admin/models").status_code == 200, 30)
    finally:
        stop.set()
        streamer.join()
        client.close()
    assert replies and all(kind == "result" for kind, _ in replies), [r for r in replies if r[0] != "result"][:3]


def test_kill_9_of_a_server_its_clients_reconnect_through_the_proxy_and_keep_spelling(cluster, frames):
    client = LiveClient(cluster.proxy, reconnection=True)
    try:
        assert word_of(spell(client, frames, "FLY")) == ["FLY"]
        assert wait_for(lambda: sum(clients_on(s) for s in cluster.servers) == 1)  # earlier tests' clients gone
        victim = next(s for s in cluster.servers if clients_on(s) == 1)
        survivor = next(s for s in cluster.servers if s is not victim)
        victim.stop(kill=True)
        assert wait_for(lambda: client.sio.connected and clients_on(survivor) == 1, 30), cluster.logs()
        assert word_of(spell(client, frames, "FLY")) == ["FLY"]  # a fresh session on the other server
    finally:
        client.close()
