"""The live page end to end: Debian's headless Chromium, a fake camera playing real photos, a real server.

The camera is a .y4m video the test writes from Kaggle photos (F, L, Y held, rests between, then `space`);
Chromium plays it in a loop as its webcam. The page must spell FLY on screen and receive its speech, with
no console error (the CSP forbids inline script, so a stray one would show here), and offer suggestions under
the growing word that end it (key 1) with the raw spelling one click away; what the decoder learned stays in
the browser until "Forget me".

The tests share one Chromium (a context each: their own storage, the camera granted or denied) and restart or
calibrate on one server of the module's own; each waits on what the page shows, not on the clock.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

expect = pytest.importorskip("playwright.sync_api", reason="playwright is not installed").expect

from tests.conftest import SHIPPED_CHECKPOINT, Server, kaggle_photos, webcam_jpeg

CHROMIUM = "/usr/bin/chromium"
FPS = 15
WORD = "FLY"
# Seconds each part of the video lasts: long enough to hold a letter at a slowed-down frame rate.
HOLD_S, REST_S = 1.4, 0.6
# Left in instance/ (ignored by git) for a person to look at after a run.
SCREENSHOT = Path(__file__).resolve().parent.parent / "instance" / "e2e-live-page.png"


def write_y4m(path: Path, frames: list[tuple[np.ndarray, float]], fps: int = FPS) -> None:
    """A raw YUV 4:2:0 video (what Chromium's fake camera reads): each (BGR image, seconds) in turn."""
    h, w = frames[0][0].shape[:2]
    with open(path, "wb") as f:
        f.write(f"YUV4MPEG2 W{w} H{h} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for image, seconds in frames:
            planes = cv2.cvtColor(image, cv2.COLOR_BGR2YUV_I420).tobytes()
            for _ in range(round(seconds * fps)):
                f.write(b"FRAME\n" + planes)


def camera_image(label: str) -> np.ndarray:
    """The first Kaggle photo of `label` as the camera shows it (webcam_jpeg's framing), BGR."""
    jpeg = webcam_jpeg(kaggle_photos(label, 1)[0], width=480, quality=95)
    return cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)


def spelling_video(path: Path, lead_s: float = REST_S) -> Path:
    """The module's camera: a rest of `lead_s`, WORD's letters held with rests between, then `space` and a rest."""
    rest = camera_image("nothing")
    parts = [(rest, lead_s)]
    for letter in WORD:
        parts += [(camera_image(letter), HOLD_S), (rest, REST_S)]
    parts += [(camera_image("space"), HOLD_S), (rest, 2 * REST_S)]
    write_y4m(path, parts)
    return path


@pytest.fixture(scope="module")
def camera_video(tmp_path_factory) -> Path:
    return spelling_video(tmp_path_factory.mktemp("camera") / "camera.y4m")


BROWSER_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--use-fake-device-for-media-stream"]


def playwright_driver():
    """Playwright's sync API (one at a time in a process); skips when it or Debian's Chromium is absent (Playwright
    downloads no browser here)."""
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (scripts/install_system.sh installs it)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    # Waits use locators (expect), not wait_for_function: the page's CSP forbids the eval the latter needs.
    with sync_api.sync_playwright() as p:
        yield p


def start_browser(playwright, extra_flags: list[str]):
    """Headless Debian Chromium; the caller closes it."""
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=BROWSER_FLAGS + extra_flags)


def launch(extra_flags: list[str]):
    """One headless Chromium, for a test that needs only it (a module with several browsers uses `playwright`)."""
    for p in playwright_driver():
        b = start_browser(p, extra_flags)
        yield b
        b.close()


@pytest.fixture(scope="module")
def playwright():
    yield from playwright_driver()


@pytest.fixture(scope="module")
def browser(playwright, camera_video):
    """One Chromium for the module (a launch costs a second or two): its fake camera plays `camera_video` from the
    start to each page granted the camera (`open_page`); no fake permission UI, so a page not granted it is denied,
    as headless Chromium answers the camera prompt."""
    b = start_browser(playwright, [f"--use-file-for-fake-video-capture={camera_video}"])
    yield b
    b.close()


@pytest.fixture
def open_page(browser):
    """open_page(camera=True, **context options) -> a page in a context of its own (fresh storage), the camera
    granted or denied; closed after the test, so no page keeps streaming frames into the next."""
    contexts = []

    def open_(camera: bool = True, **options):
        contexts.append(browser.new_context(permissions=["camera"] if camera else [], **options))
        return contexts[-1].new_page()

    yield open_
    for context in contexts:
        context.close()


def count_results(page):
    """A function answering how many `result` events the page has received so far (Socket.IO packets on its
    WebSocket, text or with binary attachments: `42["result",...` / `451-["result",...`). Call before goto."""
    received = []
    page.on("websocket", lambda ws: ws.on("framereceived", lambda m: received.append(
        isinstance(m, str) and '["result"' in m[:16])))
    return lambda: sum(received)


def test_the_page_spells_a_word_from_the_camera_and_speaks_it(server, open_page):
    page = open_page(viewport={"width": 1280, "height": 720})
    results = count_results(page)
    problems = []
    page.on("console", lambda m: problems.append(m.text) if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("response", lambda r: problems.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    # What the live region says, from before the page's own scripts run: on a busy machine the camera's first
    # letter can be read and said before a test step after the page's load could start listening.
    page.add_init_script("""window.said = []; document.addEventListener('DOMContentLoaded', () => {
        const region = document.getElementById('announce');
        new MutationObserver(() => window.said.push(region.textContent)).observe(region, {childList: true}); });""")
    page.goto(server.url + "/?landmarks=server")
    # Screen readers hear one live region say each change once (static/js/announce.js), not #word and #text both.
    live = page.evaluate("""() => [...document.querySelectorAll('[aria-live], [role=status], [role=alert]')]
        .filter((e) => !e.closest('[hidden]') || e.id === 'calibration-status').map((e) => e.id).sort()""")
    assert live == ["announce", "calibration-status", "messages", "record-status", "transcribe-status"], live

    expect(page.locator("#status-connection")).to_have_text("connected")
    for hidden in ("#calibration-panel", "#spelled", "#forget-me"):  # nothing to calibrate, keep or forget yet
        expect(page.locator(hidden)).to_be_hidden()
    expect(page.locator("#calibration-offer")).to_be_visible()  # a first visit

    # The landmarks are drawn over the video while a hand is in view (checked on the video's first letter, while
    # the word is spelled). Polled: the video's rests clear the overlay, and on a busy machine one may land between
    # seeing the hand and reading the canvas. Each poll reads a copy: reading the page's canvas back again and again
    # makes Chromium warn on the console (a problem the page would not have).
    expect(page.locator("#letter-name")).not_to_have_text("no hand", timeout=30_000)
    drawn, deadline = 0, time.monotonic() + 30
    while drawn <= 100 and time.monotonic() < deadline:
        drawn = page.evaluate("""() => {
            const c = document.getElementById('overlay');
            const copy = Object.assign(document.createElement('canvas'), {width: c.width, height: c.height});
            const ctx = copy.getContext('2d', {willReadFrequently: true});
            ctx.drawImage(c, 0, 0);
            const d = ctx.getImageData(0, 0, c.width, c.height).data;
            let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i]) n++;
            return n; }""")
        page.wait_for_timeout(50 if drawn <= 100 else 0)
    assert drawn > 100

    expect(page.locator("#text")).to_contain_text(WORD, timeout=60_000)
    expect(page.locator("body")).to_have_attribute("data-last-speech", WORD, timeout=30_000)
    assert page.text_content("#status-tts") == "server"
    assert page.text_content("#status-model") not in ("", "–")
    assert float(page.text_content("#status-fps")) > 0
    assert page.locator("#messages").text_content().strip() == ""  # no camera or server trouble shown

    # Each change was said once: the word as it grew, letter by letter, then the finished word.
    said = page.evaluate("() => window.said")
    first = next(i for i, text in enumerate(said) if text.startswith(f"word: {WORD}") or f". word: {WORD}" in text)
    grew = [text.split(".")[0] for text in said[:first + 1]]
    for n in range(1, len(WORD) + 1):
        assert grew.count(" ".join(WORD[:n])) == 1, said[:first + 1]
    assert all(a != b for a, b in zip(said, said[1:])), said

    SCREENSHOT.parent.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOT))
    assert problems == []

    # Suggestions under the growing word (the video's next FL: no step between here and there, so it is not
    # missed): key 1 ends it as the first; "keep it" restores the spelling, spoken.
    hold_still_at(page, "FL", results)
    first = page.locator("#suggestions button").first
    expect(first).to_be_visible()
    chosen = first.text_content()[:-1]  # the word, without its key
    assert chosen.startswith("FL") and chosen != "FL", chosen
    page.keyboard.press("1")
    expect(page.locator("#spelled-raw")).to_have_text("FL")
    expect(page.locator("#suggestions")).to_contain_text(f"instead of {chosen}:")  # the other suggestions
    expect(page.locator("#text")).to_contain_text(chosen + " ")
    # Collect every utterance from here on (one already on its way may still be spoken first).
    page.evaluate("""() => { window.spoken = []; new MutationObserver(() => window.spoken.push(
        document.body.dataset.lastSpeech)).observe(document.body, {attributeFilter: ["data-last-speech"]}); }""")
    page.click("#keep")
    expect(page.locator("#text")).to_contain_text("FL ")
    # Polled from here: wait_for_function polls with eval in the page, which the CSP forbids.
    spoken, deadline = False, time.monotonic() + 30
    while not spoken and time.monotonic() < deadline:
        spoken = page.evaluate("() => window.spoken.includes('FL')")
        page.wait_for_timeout(100)
    assert spoken, page.evaluate("() => window.spoken")

    # What the decoder learned stays in this browser for the next visit (sent on connect): the spellings the user
    # chose, and what it learned of their letters from the words (for the model reading them); "Forget me" drops it.
    stored = "() => [localStorage.getItem('sign2sound.words'), localStorage.getItem('sign2sound.misreadings')]"
    words, misreadings = (json.loads(x) if x else x for x in page.evaluate(stored))
    assert words == [chosen, "FL"]
    assert misreadings["model"] == page.text_content("#status-model") and {"F", "L"} <= set(misreadings["meant"]), \
        misreadings
    page.click("#forget-me")
    expect(page.locator("#forget-me")).to_be_hidden()
    assert page.evaluate(stored) == [None, None]

    # The buttons act on the server's text (FLY, then FL kept as spelled; the video is paused; a busy machine may
    # have read part of the first loop before FLY): undo deletes the last character (FL's space), clear empties it.
    # (Polled: to_have_text compares trimmed texts.)
    before = page.text_content("#text")
    assert WORD in before and before.endswith(" FL "), before
    page.click("#undo")
    deadline = time.monotonic() + 30
    while page.text_content("#text") == before and time.monotonic() < deadline:
        page.wait_for_timeout(50)
    assert page.text_content("#text") == before[:-1]
    page.keyboard.press("Escape")
    expect(page.locator("#text")).not_to_contain_text(WORD)

    # Practice, chosen from the first visit's offer: the page names a word (the opening's first, THE), the camera
    # spells (part of) FLY, and each letter of THE is shown misread or missed, with the score, and said.
    page.click("#calibration-offer-practice")
    expect(page.locator("#practice-panel")).to_be_visible()
    expect(page.locator("#calibration-offer")).to_be_hidden()
    expect(page.locator("#practice-word")).to_have_text("THE")
    page.evaluate("() => document.getElementById('video').play()")
    expect(page.locator("#practice-score")).to_have_text("0 of 1 words right", timeout=60_000)
    verdicts = page.locator("#practice-letters li").all_text_contents()
    assert [v[0] for v in verdicts] == list("THE") and all(
        v[2:] == "missed" or (v[2:].startswith("misread as ") and v[-1] in WORD) for v in verdicts), verdicts
    said = page.evaluate("() => window.said")
    assert any("THE: T " in text and "0 of 1 words right" in text for text in said), said  # with the word read
    expect(page.locator("#practice-word")).to_have_text("HAT", timeout=10_000)  # the next, from ml/practice_words.py
    page.click("#practice-stop")
    expect(page.locator("#practice-panel")).to_be_hidden()
    page.evaluate("() => document.getElementById('video').pause()")

    # Enter and Space belong to the focused control: the recorder's summary opens and closes from the keyboard.
    page.focus("#record-panel summary")
    page.keyboard.press("Enter")
    expect(page.locator("#record-form")).to_be_visible()
    # Its data set name's pattern is one the browser applies (under the `v` flag an unescaped - is no pattern).
    mismatch = "(v) => { const f = document.querySelector('#record-form [name=dataset]'); f.value = v; " \
               "return f.validity.patternMismatch; }"
    assert page.evaluate(mismatch, "bad name!") and not page.evaluate(mismatch, "my-signs_2")
    page.keyboard.press(" ")
    expect(page.locator("#record-form")).to_be_hidden()
    assert problems == []


def hold_still_at(page, word: str, results, tries: int = 3) -> None:
    """Pause the camera's video once the growing word is `word`, so the steps after it do not race the next
    letter: the frozen frame (the last letter still held, or a rest) commits nothing. At most two frames captured
    before the pause are in flight (static/js/stream.js): once SETTLED results more have come (`results`, from
    count_results), each has been answered; if one of them committed the next letter, play on and catch the word
    on the video's next loop."""
    video = "document.getElementById('video')"
    for _ in range(tries):
        expect(page.locator("#word")).to_have_text(word, timeout=60_000)
        page.evaluate(f"() => {video}.pause()")
        settled, deadline = results() + SETTLED, time.monotonic() + 30
        while results() < settled and time.monotonic() < deadline:
            page.wait_for_timeout(50)
        assert results() >= settled, f"the page received {results()} results in all, none since the pause"
        if page.text_content("#word") == word:
            return
        page.evaluate(f"() => {video}.play()")
    pytest.fail(f"the video moved past {word!r} before it could be paused, {tries} times")


SETTLED = 4  # results after a pause: the two frames in flight, one being captured, and one of the frozen frame


def test_what_the_server_refuses_to_bring_back_is_dropped_and_said(server, open_page):
    # The page sends what it kept of the user on connect; a record the server refuses (here a tampered count) is
    # said once and dropped, not sent again at every visit. The valid kept spellings stay. (No camera: none needed.)
    page = open_page(camera=False)
    page.goto(server.url + "/?landmarks=server")
    expect(page.locator("#status-connection")).to_have_text("connected")
    page.evaluate("""() => {
        localStorage.setItem('sign2sound.misreadings', JSON.stringify({model: 'x', meant: {T: -1}, misread: {}}));
        localStorage.setItem('sign2sound.words', JSON.stringify(['BJORN'])); }""")
    page.reload()
    expect(page.locator("#messages")).to_contain_text("how your letters are read")
    stored = "() => [localStorage.getItem('sign2sound.words'), localStorage.getItem('sign2sound.misreadings')]"
    assert page.evaluate(stored) == ['["BJORN"]', None]
    expect(page.locator("#forget-me")).to_be_visible()  # the browser still keeps something of the user


@pytest.fixture(scope="module")
def own_server(tmp_path_factory):
    """A server of this module's own, for the tests that restart it or fill its instance folder: two calibration
    classes and a short adaptation (test_a_first_calibration_...; the restart needs no setting)."""
    if not SHIPPED_CHECKPOINT.exists():
        pytest.fail(f"{SHIPPED_CHECKPOINT} is missing: the shipped model is part of the repository")
    server = Server(tmp_path_factory.mktemp("page") / "instance", {
        "SIGN2SOUND_CALIBRATION_PAGE_CLASSES": "[V, W]", "SIGN2SOUND_CALIBRATION_STEPS": "30"}).start()
    yield server
    server.stop()


def test_the_page_says_when_the_server_is_unreachable_and_reconnects(own_server, open_page):
    server = own_server
    page = open_page(camera=False)
    page.goto(server.url + "/?landmarks=server")
    expect(page.locator("#status-connection")).to_have_text("connected")
    server.stop()
    expect(page.locator("#messages")).to_contain_text("unreachable")
    expect(page.locator("#status-connection")).to_have_text("disconnected")
    server.start()  # back on the same port: the page reconnects by itself and clears the message
    expect(page.locator("#status-connection")).to_have_text("connected", timeout=30_000)
    expect(page.locator("#messages")).not_to_contain_text("unreachable")


def test_the_page_says_when_the_camera_is_denied(server, open_page):
    page = open_page(camera=False)
    page.goto(server.url + "/?landmarks=server")
    expect(page.locator("#messages")).to_contain_text("Camera permission was denied")
    expect(page.locator("#status-connection")).to_have_text("connected")  # the rest of the page still works


def test_without_server_speech_the_page_says_the_browser_speaks(server_without_speech, open_page):
    page = open_page(camera=False)
    page.goto(server_without_speech.url + "/?landmarks=server")
    expect(page.locator("#status-tts")).to_have_text("browser")
    expect(page.locator("#messages")).to_contain_text("this browser's own voice speaks instead")


@pytest.fixture
def hand_browser(playwright, tmp_path):
    """The camera shows one real photo of a hand, held and lowered in turn (a calibrating user who shows the same
    shape for every class: the speller, were it reading, would type it again after each rest)."""
    path = tmp_path / "hand.y4m"
    write_y4m(path, [(camera_image("V"), HOLD_S), (camera_image("nothing"), REST_S)])
    b = start_browser(playwright, ["--use-fake-ui-for-media-stream", f"--use-file-for-fake-video-capture={path}"])
    yield b
    b.close()


def in_view(page, selector: str) -> bool:
    box, view = page.locator(selector).bounding_box(), page.viewport_size
    # A pixel of slack: scrollIntoView leaves the element at a fraction of a pixel above the top (-0.08 measured).
    return box is not None and box["y"] >= -1 and box["y"] + box["height"] <= view["height"] + 1


def test_a_first_calibration_types_nothing_beside_the_camera_and_says_which_signs_look_alike(own_server,
                                                                                              hand_browser):
    # Two classes and a short adaptation (own_server) keep the test quick; the page's flow is the same as with all
    # 28. The camera shows V for both: the personal model cannot tell them apart, and the page must say so.
    server = own_server
    page = hand_browser.new_page(viewport={"width": 1280, "height": 800})
    problems = []
    page.on("console", lambda m: problems.append(m.text) if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.goto(server.url + "/?landmarks=server")
    expect(page.locator("#calibration-offer")).to_be_visible()  # a first-time visitor is offered it once
    expect(page.locator("#calibration-offer")).to_contain_text("about 20 seconds")  # 2 x (1 + 1.5) s + adapting
    expect(page.locator("#calibrate")).to_be_hidden()  # one Calibrate button at a time
    assert in_view(page, "#calibration-offer") and in_view(page, ".help")  # the first view holds both
    expect(page.locator("#status-model")).to_have_text("shipped", timeout=30_000)
    expect(page.locator("#word")).to_contain_text("V", timeout=60_000)  # the speller reads, before calibrating
    page.click("#clear")
    expect(page.locator("#word")).to_have_text("")
    # Every word and sentence shown while the panel walks through the classes.
    page.evaluate("""() => { window.typed = []; const panel = document.getElementById('calibration-panel');
        new MutationObserver(() => { if (panel.dataset.phase === 'steps') window.typed.push(
            document.getElementById('word').textContent + '|' + document.getElementById('text').textContent); })
        .observe(document.querySelector('.transcript'), {childList: true, characterData: true, subtree: true}); }""")
    page.click("#calibration-offer-yes")
    expect(page.locator("#calibration-total")).to_have_text("2")
    assert in_view(page, ".stage") and in_view(page, "#calibration-pose")  # the drawing beside the preview
    expect(page.locator("#calibration-caption")).to_contain_text("Index and middle fingers up")
    expect(page.locator("#calibration-class")).to_have_text("W", timeout=60_000)
    expect(page.locator("#calibration-status")).to_contain_text("look alike", timeout=120_000)
    # Nothing typed: the transcript never grew (a letter committed from a frame read just before the first
    # countdown may land as the panel opens; in the issue, 31 letters came of a calibration).
    typed = page.evaluate("() => window.typed")
    assert len(set(typed)) <= 1 and len(typed[0] if typed else "") <= 3, typed
    expect(page.locator("#calibration-status")).to_contain_text(" reads as ")
    expect(page.locator("#calibration-redo-confused")).to_have_text("Redo V, W")
    expect(page.locator("#calibration-redo")).to_be_hidden()  # the steps' buttons are gone; Close is there
    expect(page.locator("#calibration-close")).to_be_visible()
    expect(page.locator("#status-model")).to_have_text("shipped")  # the shared model stays, unless asked
    key = page.evaluate("() => localStorage.getItem('sign2sound.personalKey')")
    assert key and len(key) == 32 and len(list((server.instance_dir / "personal").iterdir())) == 1
    page.click("#calibration-use-mine")
    expect(page.locator("#status")).to_contain_text("model: yours", timeout=30_000)
    expect(page.locator("#calibration-panel")).to_be_hidden()
    expect(page.locator("#forget-me")).to_be_visible()

    page.reload()  # the key in localStorage brings the personal model back, and the offer is not repeated
    expect(page.locator("#status")).to_contain_text("model: yours", timeout=30_000)
    expect(page.locator("#calibration-offer")).to_be_hidden()
    expect(page.locator("#calibrate")).to_be_visible()
    page.click("#use-shared")
    expect(page.locator("#status-model")).to_have_text("shipped", timeout=30_000)
    # A switch of the user's own is no outage: no "unreachable" or "word lost" message.
    expect(page.locator("#messages")).not_to_contain_text("fresh session")
    expect(page.locator("#messages")).not_to_contain_text("unreachable")
    page.click("#use-shared")  # now "Use my model"
    expect(page.locator("#status-model")).to_have_text("yours", timeout=30_000)
    page.click("#forget-me")
    expect(page.locator("#status-model")).to_have_text("shipped", timeout=30_000)
    expect(page.locator("#forget-me")).to_be_hidden()
    assert list((server.instance_dir / "personal").iterdir()) == []

    # A phone: the preview and the panel on one screen too; no key hints on a touch screen; Cancel closes.
    phone = hand_browser.new_page(viewport={"width": 390, "height": 844}, has_touch=True, is_mobile=True)
    phone.goto(server.url + "/?landmarks=server")
    expect(phone.locator("#status-connection")).to_have_text("connected")
    assert phone.evaluate("() => Math.max(...[...document.querySelectorAll('#status > span')].map("
                          "(e) => e.getBoundingClientRect().right)) <= 390")  # the status line wraps within the screen
    expect(phone.locator("#speak kbd")).to_be_hidden()
    expect(phone.locator("#end-word")).to_be_visible()  # what the Space key does, for a finger
    phone.click("#calibration-offer-yes")
    expect(phone.locator("#calibration-countdown")).not_to_have_text("")
    assert in_view(phone, ".stage") and in_view(phone, "#calibration-pose") and in_view(phone, "#calibration-cancel")
    phone.click("#calibration-cancel")
    expect(phone.locator("#calibration-panel")).to_be_hidden()
    expect(phone.locator(".reading")).to_be_visible()
    assert problems == []
