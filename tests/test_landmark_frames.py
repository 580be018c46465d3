"""Landmark frames (app.live.landmark_frames): the page's own tracker sends 21 x [x, y, z] instead of a picture.

A real server and real python-socketio clients. The landmarks are the server's own MediaPipe output for real Kaggle
photos: ml.landmarks.HandTracker in tracking mode with the server's settings, run here on the same webcam-shaped
JPEGs in the same order as a session's tracker reads them. So a landmark frame must be read exactly as its photo is.
"""
from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from ml.landmarks import HandTracker, tracker_settings
from tests.conftest import kaggle_photos, webcam_jpeg
from tests.test_calibration import FAST, Client
from tests.test_realtime import LiveClient

ASPECT = 4 / 3  # webcam_jpeg's shape: 480 x 360


def landmark_frames(jpegs: list[bytes], config: dict) -> list[dict]:
    """The frames the page would send for `jpegs` read in order: the server's tracker (tracking mode, its settings)
    on the same images, as {"landmarks", "handedness", "aspect"}."""
    with HandTracker(static=False, **tracker_settings(config["landmarks"])) as tracker:
        hands = [tracker.process(cv2.imdecode(np.frombuffer(j, np.uint8), cv2.IMREAD_COLOR)) for j in jpegs]
    return [{"landmarks": None, "handedness": None, "aspect": ASPECT} if h is None else
            {"landmarks": h.landmarks.tolist(), "handedness": h.handedness, "aspect": ASPECT} for h in hands]


@pytest.fixture(scope="module")
def word_frames() -> list[bytes]:
    """FULL spelled with rests, then `space`: 58 webcam-shaped photos as the page would send them."""
    photo = {label: webcam_jpeg(kaggle_photos(label, 1)[0]) for label in ["F", "U", "L", "space", "nothing"]}
    frames = []
    for letter in "FULL":
        frames += [photo[letter]] * 6 + [photo["nothing"]] * 2
    return frames + [photo["space"]] * 6


def reading(result: dict) -> tuple:
    return tuple(result[k] for k in ("hand", "letter", "top", "events", "word", "text", "landmarks"))


def test_landmark_frames_are_read_exactly_as_the_photos_they_came_from(server, word_frames, config):
    by_image, by_landmarks = LiveClient(server.url), LiveClient(server.url)
    try:
        images = [by_image.hold(jpeg, 1)[0] for jpeg in word_frames]
        landmarks = []
        for frame in landmark_frames(word_frames, config):
            kind, result = by_landmarks.send(frame)
            assert kind == "result", result
            landmarks.append(result)
    finally:
        by_image.close()
        by_landmarks.close()
    assert images[-1]["text"] == "FULL "  # the photos spell the word ...
    assert [reading(r) for r in landmarks] == [reading(r) for r in images]  # ... and their landmarks, frame by frame
    assert landmarks[0]["model"] == "shipped" and landmarks[0]["timings_ms"]["landmarks"] < 1  # no tracker ran
    assert by_landmarks.speech.get(timeout=30)["text"] == "FULL"


def good_frame() -> dict:
    x = [[0.5 + 0.01 * i, 0.5 - 0.01 * i, -0.01 * i] for i in range(21)]
    return {"landmarks": x, "handedness": "Left", "aspect": ASPECT}


def changed(**fields) -> dict:
    return {**good_frame(), **fields}


def with_point(value) -> dict:
    frame = good_frame()
    frame["landmarks"][7] = value
    return frame


BAD = {
    "20 points": changed(landmarks=good_frame()["landmarks"][:20]),
    "22 points": changed(landmarks=good_frame()["landmarks"] + [[0.5, 0.5, 0]]),
    "a point of 2 values": with_point([0.5, 0.5]),
    "a flat list": changed(landmarks=[0.5] * 63),
    "not a list": changed(landmarks="21 points"),
    "a string coordinate": with_point([0.5, "0.5", 0]),
    "a boolean coordinate": with_point([True, 0.5, 0]),
    "a null coordinate": with_point([0.5, None, 0]),
    "NaN": with_point([math.nan, 0.5, 0]),
    "infinity": with_point([0.5, math.inf, 0]),
    "far outside the image": with_point([0.5, 7.0, 0]),
    "far behind it": with_point([0.5, 0.5, -40.0]),
    "unknown handedness": changed(handedness="left"),
    "no handedness for a hand": changed(handedness=None),
    "handedness without a hand": changed(landmarks=None, handedness="Right"),
    "no aspect": {k: v for k, v in good_frame().items() if k != "aspect"},
    "an absurd aspect": changed(aspect=1000.0),
    "a zero aspect": changed(aspect=0),
    "a string aspect": changed(aspect="4/3"),
    "an unknown field": changed(image_url="http://x"),
    "oversized": changed(landmarks=[[0.5, 0.5, 0]] * 100_000),
    "an oversized string": changed(handedness="Left" * 10_000),
}


def test_every_bad_landmark_frame_is_refused_and_the_server_goes_on_serving(server, word_frames):
    client, other = LiveClient(server.url), LiveClient(server.url)
    try:
        for case, payload in BAD.items():
            kind, reply = client.send(payload)
            assert (kind, reply["code"]) == ("error", "bad_landmarks"), (case, reply)
            assert reply["message"] and len(reply["message"]) < 300, (case, reply)
        kind, reply = client.send({"seq": "x", **good_frame()})
        assert (kind, reply["code"]) == ("error", "bad_payload")
        # The same connection reads the next good frame, and another client is served as ever.
        kind, reply = client.send(good_frame())
        assert kind == "result" and reply["hand"] is True and len(reply["top"]) == 3, reply
        kind, reply = client.send({"landmarks": None, "handedness": None, "aspect": ASPECT})
        assert kind == "result" and (reply["hand"], reply["letter"]) == (False, "nothing"), reply
        assert other.hold(word_frames[0], 3)[-1]["letter"] == "F"
    finally:
        client.close()
        other.close()


def test_a_personal_model_made_from_landmark_frames_reads_landmark_frames(make_server, config):
    """Calibration samples come from landmark frames; the personal model then reads landmark frames as it reads the
    same photos (the Kaggle signer's A and K)."""
    server = make_server(env=FAST)
    labels = ["A", "K"]
    photos = {label: [webcam_jpeg(p) for p in kaggle_photos(label, 60)[::6]] for label in labels}
    client = Client(server.url)
    for label in labels:
        client.call("calibrate", {"label": label})
        for frame in landmark_frames(photos[label], config):
            kind, reply = client.frame(frame)
            assert kind == "result" and reply["calibration"]["label"] == label, reply
        client.call("calibrate", {"label": None})
    adapted = client.adapt()
    assert adapted["model"] == "personal" and adapted["samples"] >= 10
    client.close()

    rest = webcam_jpeg(kaggle_photos("nothing", 1)[0])
    held_out = [webcam_jpeg(p) for label in labels for p in kaggle_photos(label, 200)[150::25]]
    sequence = [frame for jpeg in held_out for frame in [rest] + [jpeg] * 3]
    by_image, by_landmarks = Client(server.url, key=adapted["key"]), Client(server.url, key=adapted["key"])
    images = [by_image.result(jpeg) for jpeg in sequence]
    landmarks = [by_landmarks.result(frame) for frame in landmark_frames(sequence, config)]
    by_image.close()
    by_landmarks.close()
    assert {r["model"] for r in images + landmarks} == {"personal"}
    assert [(r["letter"], r["top"]) for r in landmarks] == [(r["letter"], r["top"]) for r in images]
