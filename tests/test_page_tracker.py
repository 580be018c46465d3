"""The page's own hand tracker (static/js/tracker.js, npm @mediapipe/hands served from /vendor/hands/): Debian's
headless Chromium with a fake camera of real photos (tests/test_page_e2e.py's), a real server. In browser mode the
page must spell the word while not one message it sends carries a picture: only landmarks leave the device.
"""
from __future__ import annotations

import json

import pytest

from ml.config import ROOT
from tests.test_page_e2e import WORD, browser, expect, open_page, playwright, spelling_video  # noqa: F401 (fixtures)

TRACKER = ROOT / "node_modules" / "@mediapipe" / "hands" / "hands.js"
# The page's tracker is ready about when the camera plays (it loads meanwhile), or seconds later on a busy machine
# (script, WASM, models, the graph's first frame); one that misses F waits for the video's next loop (~9 s). A longer
# first rest lets it read the first loop's F.
LEAD_S = 2.5


@pytest.fixture(scope="module")
def camera_video(tmp_path_factory):
    return spelling_video(tmp_path_factory.mktemp("camera") / "camera.y4m", lead_s=LEAD_S)


def test_in_browser_mode_the_page_spells_a_word_and_sends_no_picture(server, open_page):  # noqa: F811
    if not TRACKER.exists():
        pytest.skip("the page's hand tracker is not installed (make setup runs npm ci)")
    page = open_page(viewport={"width": 1280, "height": 720})
    sent, problems = [], []
    page.on("websocket", lambda ws: ws.on("framesent", lambda m: sent.append(m)))
    page.on("request", lambda r: sent.append(r.post_data_buffer) if r.method == "POST" else None)  # polling
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("response", lambda r: problems.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    page.goto(server.url + "/?landmarks=browser")

    expect(page.locator("#status-tracking")).to_contain_text("this device", timeout=60_000)
    expect(page.locator("#text")).to_contain_text(WORD, timeout=90_000)
    expect(page.locator("#letter-name")).not_to_have_text("no hand", timeout=30_000)  # the overlay's landmarks too
    fps = float(page.get_attribute("body", "data-tracker-fps"))
    print(f"page tracker: {fps:.1f} fps")
    assert fps > 0 and "fps)" in page.text_content("#status-tracking")  # the page shows what it reached

    frames = sent_frames(sent)
    assert len(frames) > 20 and all("landmarks" in f and "image" not in f for f in frames), frames[:3]
    assert any(f["landmarks"] for f in frames) and not any(isinstance(m, bytes) for m in sent)
    assert problems == []

    # The control hands the camera to the server: pictures are sent from then on.
    page.click("#switch-tracking")
    expect(page.locator("#status-tracking")).to_have_text("server")
    expect(page.locator("#switch-tracking")).to_have_text("track on this device")
    count = len(sent)
    for _ in range(50):  # polled: the first picture follows the frames already in flight
        page.wait_for_timeout(200)
        if any("image" in f for f in sent_frames(sent[count:])):
            break
    assert any("image" in f for f in sent_frames(sent[count:])), sent_frames(sent[count:])[-3:]


def sent_frames(sent: list) -> list[dict]:
    """The `frame` events among the WebSocket messages (Socket.IO's text packets; a picture is a binary attachment
    named by a placeholder in its "image")."""
    return [json.loads(m[m.index("["):])[1] for m in sent if isinstance(m, str) and '"frame"' in m[:12]]
