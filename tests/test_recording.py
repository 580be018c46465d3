"""Record mode against a real server: real photos over the '/record' Socket.IO namespace become a landmark
set under instance/datasets/, listed by the admin and usable by a fine-tuning job."""
from __future__ import annotations

import re
import threading

import numpy as np
import pytest
import requests
import socketio

from ml.landmark_set import LandmarkSet
from ml.landmarks import canonical_class
from tests.admin_client import AdminClient
from tests.conftest import shared_data

ENDINGS = ("no_hand", "not_saved", "not_recording")  # errors that end a recording (a bad frame does not)


class Recorder:
    """A '/record' client: each event answered by its ack."""

    def __init__(self, url: str):
        self.client = socketio.Client(reconnection=False)
        self.client.connect(url, namespaces=["/record"], transports=["websocket"], wait_timeout=10)

    def call(self, event: str, data=None) -> dict:
        return self.client.call(event, data, namespace="/record", timeout=30)


@pytest.fixture(scope="module")
def connection(admin_server):
    r = Recorder(admin_server.url)  # one per module: the client library's disconnect can take seconds
    yield r
    r.client.disconnect()


@pytest.fixture
def recorder(connection):
    assert connection.call("cancel") == {"cancelled": True}  # each test starts with no recording
    return connection


def photos(letter: str, n: int = 15) -> list[bytes]:
    return [p.read_bytes() for p in sorted((shared_data("kaggle") / letter).glob("*.jpg"))[:n]]


def record(recorder, dataset: str, signer: str, letter: str, frames: int, images: list[bytes]) -> list[dict]:
    """Start a recording and send images until the server saves or refuses; every ack, in order."""
    started = recorder.call("start", {"dataset": dataset, "signer": signer, "letter": letter, "frames": frames})
    assert started == {"needed": frames, "dataset": dataset, "letter": canonical_class(letter), "signer": signer}
    replies = []
    for image in images:
        replies.append(recorder.call("frame", image))
        if "saved" in replies[-1] or replies[-1].get("error", {}).get("code") in ENDINGS:
            break
    return replies


@pytest.mark.parametrize("change,field", [
    ({"dataset": "../escape"}, "dataset"), ({"dataset": ""}, "dataset"), ({"dataset": "kaggle"}, "dataset"),
    ({"signer": ""}, "signer"), ({"signer": "<script>"}, "signer"), ({"letter": "nothing"}, "letter"),
    ({"letter": "AB"}, "letter"), ({"frames": 0}, "frames"), ({"frames": 10_000}, "frames"), ({"frames": "5"}, "frames"),
])
def test_bad_start_is_refused_naming_the_field(recorder, change, field):
    reply = recorder.call("start", {"dataset": "set", "signer": "ann", "letter": "B", "frames": 3, **change})
    assert reply["error"]["field"] == field and reply["error"]["message"]


def test_a_frame_needs_a_recording(recorder):
    assert recorder.call("frame", photos("B", 1)[0])["error"]["code"] == "not_recording"


def test_recordings_append_real_landmarks_listed_by_the_admin(admin_server, recorder):
    b_photos = photos("B")
    # a broken frame in the middle is refused on its own and the recording goes on
    replies = record(recorder, "ann-set", "Ann", "b", 3, b_photos[:2] + [b"not an image"] + b_photos[2:])
    assert {"error": {"code": "unsupported_format", "message": "only JPEG and PNG frames are accepted",
                      "seq": None}} in replies
    assert replies[-1]["saved"] is True and replies[-1]["samples"] == 3, replies
    counts = [r["collected"] for r in replies if "collected" in r]
    assert counts == sorted(counts) and counts[-1] == 3

    replies = record(recorder, "ann-set", "Ann", "C", 2, photos("C"))
    assert replies[-1]["saved"] is True and replies[-1]["samples"] == 5, replies

    data = LandmarkSet.load(admin_server.instance_dir / "datasets" / "ann-set.npz")
    assert data.y.tolist() == ["B"] * 3 + ["C"] * 2
    assert set(data.group) == {"Ann"} and set(data.handedness) <= {"Left", "Right"}
    assert np.allclose(data.aspect, 1.0)  # 200x200 photos
    assert data.X.shape == (5, 21, 3) and 0 <= data.X[..., :2].min() and data.X[..., :2].max() <= 1.5
    assert np.isfinite(data.features()).all()

    admin = AdminClient(admin_server.url).login()
    listed = {d["name"]: d for d in admin.get("/api/admin/datasets").json()["datasets"]}
    assert listed["ann-set"] == {"name": "ann-set", "kind": "recorded", "available": True, "samples": 5,
                                 "classes": {"B": 3, "C": 2}, "signers": ["Ann"]}


def test_no_hand_in_view_saves_nothing(admin_server, recorder):
    replies = record(recorder, "empty-set", "Ann", "A", 1, photos("nothing", 10))
    assert replies[-1]["error"]["code"] == "no_hand" and all(not r.get("hand") for r in replies)
    assert len(replies) == 5  # recording.max_frames_factor x frames, then it gives up
    assert not (admin_server.instance_dir / "datasets" / "empty-set.npz").exists()
    assert recorder.call("frame", photos("A", 1)[0])["error"]["code"] == "not_recording"


def test_fine_tune_the_live_model_on_recorded_samples(admin_server, recorder):
    replies = record(recorder, "tune-set", "Bo", "B", 4, photos("B"))
    assert replies[-1].get("saved"), replies
    replies = record(recorder, "tune-set", "Bo", "C", 4, photos("C"))
    assert replies[-1].get("saved"), replies
    admin = AdminClient(admin_server.url).login()
    job = admin.wait_job(admin.start_job(datasets=["tune-set"], base="shipped", epochs=1, lr=0.001, batch_size=8))
    assert job["status"] == "succeeded", job
    assert job["params"]["base"] == "shipped" and job["model"] == f"job-{job['id']}"


def test_the_live_page_carries_the_record_panel(server):
    page = requests.get(server.url + "/", timeout=10).text
    assert 'id="record-panel"' in page and 'id="record-form"' in page
    for src in re.findall(r'(?:src|href)="(/static/[^"]*(?:record)[^"]*)"', page):
        assert requests.get(server.url + src, timeout=10).status_code == 200
    script = requests.get(server.url + "/static/js/record.js", timeout=10).text
    for module in re.findall(r'from "\./([^"]+)"', script):  # its imports resolve too
        assert requests.get(server.url + "/static/js/" + module, timeout=10).status_code == 200


def test_the_number_of_recorded_sets_is_bounded(make_server):
    server = make_server(env={"SIGN2SOUND_RECORDING_MAX_DATASETS": "1"})
    recorder = Recorder(server.url)
    try:
        b = photos("B")
        assert record(recorder, "first", "Ann", "B", 1, b)[-1]["saved"] is True
        assert record(recorder, "first", "Ann", "B", 1, b)[-1]["samples"] == 2  # adding to it is fine
        reply = record(recorder, "second", "Ann", "B", 1, b)[-1]
        assert reply["error"]["code"] == "not_saved" and "1 recorded data sets" in reply["error"]["message"]
        assert not (server.instance_dir / "datasets" / "second.npz").exists()
    finally:
        # the development server answers a WebSocket close only after seconds, which the test need not wait for
        threading.Thread(target=recorder.client.disconnect, daemon=True).start()
