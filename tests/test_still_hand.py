"""A held letter is never lost: the still-hand rule over the wire (a real server, real Socket.IO clients, real Kaggle
photos through tracking-mode MediaPipe and the shipped model) and on the page (headless Chromium, a fake camera).

M241 is a real M photo the shipped model reads below the speller's confidence through the live path (M about 0.55,
N about 0.4 when held): before the still-hand rule nothing was ever written for it.
"""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from tests.conftest import kaggle_photos, shared_data, webcam_jpeg
from tests.test_realtime import LiveClient, events_of

UNSURE_PHOTO = ("M", "M241.jpg", "N")  # letter, Kaggle photo, the model's second guess


def unsure_photo(width: int = 480, quality: int = 70) -> bytes:
    letter, name, _ = UNSURE_PHOTO
    return webcam_jpeg(shared_data("kaggle") / letter / name, width, quality)


def sliding(photo, steps: int = 6, side: int = 200, width: int = 480) -> list[bytes]:
    """A hand moving across the camera's view: the photo, `side` px square, `width` / steps further right each
    frame (about a palm width: a hand on its way to the next letter)."""
    from ml.landmarks import read_image

    image = cv2.resize(read_image(photo)[3:-3, 3:-3], (side, side))
    height = width * 3 // 4
    frames = []
    for i in range(steps):
        left = i * (width - side) // (steps - 1)
        canvas = cv2.copyMakeBorder(image, (height - side) // 2, height - side - (height - side) // 2, left,
                                    width - side - left, cv2.BORDER_REPLICATE)
        frames.append(cv2.imencode(".jpg", canvas, [cv2.IMWRITE_JPEG_QUALITY, 70])[1].tobytes())
    return frames


@pytest.fixture(scope="module")
def photos() -> dict[str, bytes]:
    return {label: webcam_jpeg(kaggle_photos(label, 1)[0]) for label in ("F", "L", "V", "W", "Y", "nothing")}


@pytest.fixture
def client(server):
    c = LiveClient(server.url)
    yield c
    c.close()


def letters_of(results: list[dict]) -> list[dict]:
    return [e for e in events_of(results) if e["type"] == "letter"]


def test_a_letter_read_below_the_confidence_held_still_is_committed_unsure(client, photos):
    held = client.hold(unsure_photo(), 8)
    # The model never reached the speller's confidence: the confident rule alone commits nothing.
    assert all(r["confidence"] < 0.6 for r in held), [r["top"][:2] for r in held]
    assert letters_of(held) == []
    results = held + client.hold(photos["nothing"], 2)  # the hand rests: the still hold commits
    letter, _, second = UNSURE_PHOTO
    assert letters_of(results) == [{"type": "letter", "value": letter, "unsure": True, "second": second}]
    [word] = [e for e in client.sio.call("space", timeout=30)["events"] if e["type"] == "word"]
    assert word["raw"] == letter


def test_a_hand_moving_between_two_letters_commits_nothing_between_them(client, photos):
    moving = client.hold_each(sliding(kaggle_photos("W", 1)[0]))
    # Passing by, the hand is read as W confidently for four frames or more: the confident rule alone would write W.
    assert sum(r["letter"] == "W" and r["confidence"] >= 0.6 for r in moving) >= 4, [r["top"][0] for r in moving]
    results = client.hold(photos["F"], 6) + client.hold_each(sliding(kaggle_photos("W", 1)[0])) + \
        client.hold(photos["Y"], 6) + client.hold(photos["nothing"], 2)
    assert [e["value"] for e in letters_of(results)] == ["F", "Y"]


def test_a_letter_held_five_frames_after_a_rest_is_committed_once(client, photos):
    results = []
    for letter in "FVWY":
        results += client.hold(photos["nothing"], 1) + client.hold(photos[letter], 5)
    results += client.hold(photos["nothing"], 1)
    assert [e["value"] for e in letters_of(results)] == list("FVWY")


def test_a_double_letter_still_needs_its_rest(client, photos):
    other_l = webcam_jpeg(kaggle_photos("L", 2)[1])  # the hand shifts to another L: no rest, no second L
    results = client.hold(photos["L"], 6) + client.hold(other_l, 6) + client.hold(photos["L"], 6)
    assert [e["value"] for e in letters_of(results)] == ["L"]
    results = client.hold(photos["nothing"], 1) + client.hold(photos["L"], 6)
    assert [e["value"] for e in letters_of(results)] == ["L"] and results[-1]["word"] == "LL"


def test_the_page_shows_an_unsure_letter_lighter_with_its_second_guess(server, tmp_path):
    from playwright.sync_api import expect

    from tests.test_page_e2e import launch, write_y4m

    def image(jpeg: bytes) -> np.ndarray:
        return cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)

    rest = image(webcam_jpeg(kaggle_photos("nothing", 1)[0], quality=95))
    video = tmp_path / "camera.y4m"
    write_y4m(video, [(rest, 0.6), (image(unsure_photo(quality=95)), 1.4), (rest, 3.0)])
    for browser in launch(["--use-fake-ui-for-media-stream", f"--use-file-for-fake-video-capture={video}"]):
        page = browser.new_page()
        page.goto(server.url + "/?landmarks=server")
        letter, _, second = UNSURE_PHOTO
        unsure = page.locator("#word .unsure").first
        expect(unsure).to_have_text(letter, timeout=60_000)
        expect(unsure).to_have_attribute("data-second", second)
        assert float(unsure.evaluate("e => getComputedStyle(e).opacity")) < 1
