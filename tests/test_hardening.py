"""One misbehaving client never stops the server serving everyone else (issue: hardening).

A real server on 127.0.0.1; a seeded fuzzer sends 3 rounds of bad messages of every kind to the live and the
'/record' namespaces; then a good frame must still get the right letter, other clients must have been served
throughout, and the server's memory must not have grown past a bound (nor with many recordings). Also: raw
Socket.IO packets before connect and after disconnect, a disconnect in the middle of a frame, a message over
the Engine.IO cap, and a foreign origin.
"""
from __future__ import annotations

import os
import random
import runpy
import signal
import threading
import time
import urllib.request
from pathlib import Path

import pytest
import socketio
import websocket

from tests.conftest import NO_ADMIN, ROOT, Server, kaggle_photos, webcam_jpeg
from tests.test_realtime import REPLY_TIMEOUT, LiveClient

N_BAD = 1200
# Leaking 100 KB per bad message would cross it in every round. The fuzzer keeps at most MAX_IN_FLIGHT frames
# unanswered, as the page does: flooding measured the backlog a busy machine let pile up (1 MB frames waiting
# for a worker; glibc keeps the high-water mark), not a leak: 80 and 117 MB under load, 21 MB on a quieter one.
RSS_GROWTH_LIMIT_MB = 100
MAX_IN_FLIGHT = 4
N_BAD_RECORD = 400  # acknowledged one by one, so fewer
IDLE_RECORDINGS = 8


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024


def bad_frames(rng: random.Random, good: bytes, max_bytes: int) -> list:
    """Makers of every kind of bad `frame` payload."""
    png_head = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"
    return [
        lambda: ("frame", rng.randbytes(rng.randint(0, 3000))),  # random bytes
        lambda: ("frame", good[:rng.randint(1, len(good) - 1)]),  # truncated JPEG
        lambda: ("frame", png_head + rng.randbytes(rng.randint(0, 200))),  # truncated / junk PNG
        lambda: ("frame", b"GIF89a" + rng.randbytes(100)),  # GIF: not accepted
        lambda: ("frame", png_head + rng.randint(20_000, 2**31 - 1).to_bytes(4, "big") * 2 + b"\x08\x02\0\0\0"),
        lambda: ("frame", b"\xff\xd8\xff\xc0\x00\x11\x08" + b"\xff\xff\xff\xff" + rng.randbytes(50)),  # JPEG bomb
        lambda: ("frame", b"\xff\xd8\xff" + bytes(max_bytes + rng.randint(1, 1000))),  # over the frame cap
        lambda: ("frame", bytearray(good[:50]) + rng.randbytes(500)),  # right magic, corrupt body
        lambda: ("frame", rng.choice([None, 1, 2.5, "text", [], [1, 2], {}, True])),  # wrong types
        lambda: ("frame", (good, good)),  # two arguments instead of one
        lambda: ("frame", {"seq": rng.choice(["1", None, 1.5, [], True]), "image": rng.choice([good[:10], "x", 5])}),
        lambda: ("frame", {"image": None}),
    ]


def bad_messages(good: bytes, max_bytes: int, seed: int = 7):
    """(event, args) pairs for the live namespace: every kind of bad frame and wrong-typed payload, seeded."""
    rng = random.Random(seed)
    makers = bad_frames(rng, good, max_bytes) + [
        lambda: (rng.choice(["reset", "undo", "speak"]), rng.choice([None, 1, "x", {"a": 1}, b"\x00" * 10])),
        lambda: (rng.choice(["nonexistent", "result", "error", "speech"]), rng.randbytes(20)),
    ]
    for _ in range(N_BAD):
        yield rng.choice(makers)()


def bad_record_messages(good: bytes, max_bytes: int, seed: int):
    """(event, args) pairs for '/record': bad starts, bad frames, and now and then a real recording (a good start,
    good frames: each takes a tracker), seeded. Every event here has a handler, so every one is acknowledged."""
    rng = random.Random(seed)
    start = {"dataset": "fuzz", "signer": "fuzzer", "letter": "V", "frames": 2}
    makers = bad_frames(rng, good, max_bytes) + [
        lambda: ("start", rng.choice([None, 1, "x", [], b"\x00" * 10, {}])),
        lambda: ("start", {**start, rng.choice(list(start)): rng.choice([None, "", "../x", 10**6, [], "nothing"])}),
        lambda: ("start", {**start, "frames": rng.randint(1, 120)}),
        lambda: ("frame", good),
        lambda: ("cancel", rng.choice([None, 1, {"a": 1}])),
    ]
    for _ in range(N_BAD_RECORD):
        yield rng.choice(makers)()


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory):
    """The production server as `make run` starts it (gunicorn), but with no per-client rate limit, so every bad
    frame reaches the checks and the decoder. The last test of this file stops it with Ctrl-C."""
    s = Server(tmp_path_factory.mktemp("instance"), {**NO_ADMIN, "SIGN2SOUND_FRAMES_MAX_FPS": "100000"},
               gunicorn=True).start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def good() -> dict[str, bytes]:
    return {"V": webcam_jpeg(kaggle_photos("V", 1)[0]), "nothing": webcam_jpeg(kaggle_photos("nothing", 1)[0])}


def wait_until(condition, what: str, poll_s: float = 0.005) -> None:
    deadline = time.monotonic() + REPLY_TIMEOUT
    while not condition():
        assert time.monotonic() < deadline, f"not within {REPLY_TIMEOUT} s: {what}"
        time.sleep(poll_s)


def fuzz_round(url: str, bystander: LiveClient, good: bytes, max_bytes: int, seed: int) -> None:
    """N_BAD bad messages to each namespace from a fresh client; every frame and every record event answered, the
    bystander served throughout."""
    fuzzer = socketio.Client(reconnection=False)
    replies, frame_replies = [], [0]
    answered = threading.Condition()  # notified at each frame's reply: the sender waits on it, not on a poll

    def on_reply(reply):
        with answered:
            replies.append(reply)
            frame_replies[0] += reply.get("code") != "nothing_to_speak"  # `speak` is answered too: not a frame's
            answered.notify_all()

    fuzzer.on("error", on_reply)
    fuzzer.on("result", on_reply)
    fuzzer.connect(url, namespaces=["/", "/record"], transports=["websocket"], wait_timeout=10)
    frames_sent = 0

    def wait_for_replies(in_flight: int) -> None:
        with answered:
            assert answered.wait_for(lambda: frames_sent - frame_replies[0] <= in_flight, REPLY_TIMEOUT), \
                f"not within {REPLY_TIMEOUT} s: live frames"

    for i, (event, arg) in enumerate(bad_messages(good, max_bytes, seed)):
        if event == "frame":
            wait_for_replies(MAX_IN_FLIGHT - 1)
            frames_sent += 1
        fuzzer.emit(event, arg)
        if i % 100 == 0:  # the other client is served while the fuzz goes on
            assert bystander.hold(good, 1)[0]["letter"] == "V"
    wait_for_replies(0)  # every frame answered
    assert all(r.get("code") for r in replies if "letter" not in r)

    acks = []
    for i, (event, arg) in enumerate(bad_record_messages(good, max_bytes, seed)):  # one at a time: acknowledged
        acks.append(fuzzer.call(event, arg, namespace="/record", timeout=REPLY_TIMEOUT))
        if i % 100 == 0:
            assert bystander.hold(good, 1)[0]["letter"] == "V"
    assert all(isinstance(a, dict) and (a.get("error", {}).get("code") or a.keys() & {"needed", "collected",
                                                                                        "cancelled"}) for a in acks)
    assert any(a.get("hand") for a in acks)  # real recordings ran (each took a tracker)
    assert fuzzer.connected  # bad messages never cost the fuzzer its own connection
    fuzzer.disconnect()


def test_fuzz_then_a_good_frame_still_gets_the_right_answer(fuzz_server, good, config):
    bystander = LiveClient(fuzz_server.url)
    assert bystander.hold(good["V"], 3)[-1]["letter"] == "V"
    max_bytes = config["frames"]["max_bytes"]
    # The first round warms the allocator. A leak per bad message grows memory in every later round by the
    # same amount; glibc's high-water mark (freed 1 MB frames stay in its per-thread arenas, spread differently
    # with the machine's load) rises in one round and not the next: measured 4 and 66 MB in one round with
    # the same code. So the smaller growth of two rounds is held to the bound.
    fuzz_round(fuzz_server.url, bystander, good["V"], max_bytes, seed=7)
    growths = []
    for seed in (8, 9):
        rss_before = rss_mb(fuzz_server.serving_pid)
        fuzz_round(fuzz_server.url, bystander, good["V"], max_bytes, seed=seed)
        growths.append(rss_mb(fuzz_server.serving_pid) - rss_before)

    assert bystander.hold(good["V"], 3)[-1]["letter"] == "V"
    bystander.close()
    fresh = LiveClient(fuzz_server.url)  # takes over the bystander's idle tracker: no new MediaPipe graph
    assert fresh.hold(good["V"], 3)[-1]["letter"] == "V"
    fresh.close()
    assert min(growths) < RSS_GROWTH_LIMIT_MB, f"server RSS grew {growths} MB in two rounds of {N_BAD} bad messages"
    assert "Traceback" not in fuzz_server.log()


def test_recordings_take_their_trackers_from_the_pool(fuzz_server, good):
    """A recording makes no MediaPipe graph of its own: after a first round, ten more recordings do not grow the
    server's memory past the bound; and recordings started by many visitors who send no frame hold no graph
    (each one held a graph of its own before)."""
    recorder = socketio.Client(reconnection=False)
    recorder.connect(fuzz_server.url, namespaces=["/record"], transports=["websocket"], wait_timeout=10)
    call = lambda event, data: recorder.call(event, data, namespace="/record", timeout=REPLY_TIMEOUT)  # noqa: E731

    def recordings(n: int) -> None:
        for i in range(n):
            start = {"dataset": "pool", "signer": f"signer {i}", "letter": "V", "frames": 2}
            assert call("start", start)["needed"] == 2
            assert call("frame", good["V"])["collected"] == 1
            if i % 2:
                assert call("cancel", None) == {"cancelled": True}  # a cancelled one gives its tracker back too
            else:
                assert call("frame", good["V"])["saved"] is True

    recordings(10)
    rss_before = rss_mb(fuzz_server.serving_pid)
    recordings(10)
    growth = rss_mb(fuzz_server.serving_pid) - rss_before
    assert growth < RSS_GROWTH_LIMIT_MB, f"server RSS grew {growth:.0f} MB over 10 recordings"

    idle = []
    rss_before = rss_mb(fuzz_server.serving_pid)
    for i in range(IDLE_RECORDINGS):
        visitor = socketio.Client(reconnection=False)
        visitor.connect(fuzz_server.url, namespaces=["/record"], transports=["websocket"], wait_timeout=10)
        start = {"dataset": "pool", "signer": f"idle {i}", "letter": "V", "frames": 2}
        assert visitor.call("start", start, namespace="/record", timeout=REPLY_TIMEOUT)["needed"] == 2
        idle.append(visitor)
    growth = rss_mb(fuzz_server.serving_pid) - rss_before
    for client in [recorder, *idle]:
        threading.Thread(target=client.disconnect, daemon=True).start()  # its close handshake can take seconds
    assert growth < RSS_GROWTH_LIMIT_MB, f"server RSS grew {growth:.0f} MB for {IDLE_RECORDINGS} idle recordings"
    assert "Traceback" not in fuzz_server.log()


def engineio_socket(url: str) -> websocket.WebSocket:
    ws = websocket.create_connection(url.replace("http", "ws") + "/socket.io/?EIO=4&transport=websocket", timeout=10)
    assert ws.recv().startswith("0")  # Engine.IO open
    return ws


def test_events_before_connect_and_after_disconnect_are_ignored(server, good):
    ws = engineio_socket(server.url)
    ws.send('42["frame",{"seq":1,"image":"x"}]')  # an event before the Socket.IO connect
    ws.send('42["reset"]')
    ws.send("40")
    reply = ws.recv()
    while reply in ("2", "3"):
        reply = ws.recv()
    assert reply.startswith("40{"), reply  # the namespace still connects
    ws.send('41')  # leave the namespace, then talk anyway
    ws.send('42["undo"]')
    ws.send('42["frame",{"seq":2}]')
    ws.close()
    client = LiveClient(server.url)
    assert client.hold(good["V"], 3)[-1]["letter"] == "V"
    client.close()
    assert "Traceback" not in server.log()


def test_a_client_that_disconnects_mid_frame_costs_nothing(server, good):
    clients = lambda: server.status()["clients"]  # noqa: E731
    # Earlier tests' clients close asynchronously: a count taken now could include one that ends later, which
    # the count below would then never match again (it failed that way on a busy machine).
    wait_until(lambda: clients() == 0, "earlier tests' sessions released", 0.1)
    for _ in range(5):
        c = socketio.Client(reconnection=False)
        c.connect(server.url, transports=["websocket"], wait_timeout=10)
        for seq in range(3):
            c.emit("frame", {"seq": seq, "image": good["V"]})
        c.disconnect()  # frames still in progress on the server
    wait_until(lambda: clients() == 0, "every session released", 0.1)
    client = LiveClient(server.url)
    assert client.hold(good["V"], 3)[-1]["letter"] == "V"
    client.close()
    assert "Traceback" not in server.log()


def test_a_message_over_the_engineio_cap_closes_only_that_connection(server, good, config):
    bystander = LiveClient(server.url)
    ws = engineio_socket(server.url)
    ws.send("40")
    ws.recv()
    try:
        ws.send('42["frame",{"seq":1,"image":"' + "A" * (4 * config["frames"]["max_bytes"]) + '"}]')
        ws.recv()  # the server drops this connection
        while True:
            ws.recv()
    except (websocket.WebSocketException, OSError):
        pass
    assert bystander.hold(good["V"], 3)[-1]["letter"] == "V"
    bystander.close()


def test_a_foreign_origin_cannot_open_a_socket(server):
    with pytest.raises(socketio.exceptions.ConnectionError):
        c = socketio.Client(reconnection=False)
        c.connect(server.url, transports=["websocket"], headers={"Origin": "http://evil.example"}, wait_timeout=5)
    ok = socketio.Client(reconnection=False)
    ok.connect(server.url, transports=["websocket"], wait_timeout=5)  # websocket-client sends the server's own origin
    ok.disconnect()


def test_security_headers_on_pages_and_api(server):
    for path in ["/", "/api/status"]:
        headers = urllib.request.urlopen(server.url + path).headers
        csp = headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["X-Frame-Options"] == "DENY"


def test_no_debugger_outside_development(server):
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(server.url + "/no-such-page?__debugger__=yes&cmd=resource&f=style.css")
    assert err.value.code == 404
    assert b"Werkzeug Debugger" not in err.value.read()


def test_gunicorn_refuses_eventlet_mode_and_says_what_serves_it(monkeypatch):
    """gunicorn 27 has no eventlet worker: `make run` with async_mode eventlet ends at once with a message naming
    `python wsgi.py` (which test_realtime's eventlet test serves from), not with an entry-point traceback."""
    monkeypatch.setenv("SIGN2SOUND_ASYNC_MODE", "eventlet")
    with pytest.raises(SystemExit, match="python wsgi.py"):
        runpy.run_path(str(ROOT / "deploy" / "gunicorn.conf.py"))


def test_make_run_serves_with_gunicorn_on_loopback_and_ctrl_c_stops_it(fuzz_server):
    """`make run` is gunicorn with deploy/gunicorn.conf.py (the shared `server` and the fuzz server of these tests
    run the same way): bound to config.yaml's 127.0.0.1:5000, the shipped model live, no development-server warning;
    Ctrl-C (SIGINT to its process group, as a terminal sends it) ends the arbiter and its worker, with a client still
    connected. Last in this file: it stops the fuzz server (a server of its own was one more start)."""
    recipe = (ROOT / "Makefile").read_text().split("\nrun:", 1)[1].split("\n\n", 1)[0]
    assert "$(PY) -m gunicorn -c deploy/gunicorn.conf.py" in recipe, recipe
    assert runpy.run_path(str(ROOT / "deploy" / "gunicorn.conf.py"))["bind"] == "127.0.0.1:5000"  # no env override

    server = fuzz_server
    try:
        worker = server.serving_pid
        assert server.status()["model"] == "shipped"
        client = socketio.Client(reconnection=False)
        client.connect(server.url, transports=["websocket"], wait_timeout=10)
        os.killpg(server.proc.pid, signal.SIGINT)
        assert server.proc.wait(timeout=30) == 0, server.log()
        assert not Path(f"/proc/{worker}").exists() or "zombie" in Path(f"/proc/{worker}/status").read_text()
        log = server.log()
        assert f"Listening at: {server.url}" in log and "development server" not in log, log
    finally:
        server.stop(kill=True)
