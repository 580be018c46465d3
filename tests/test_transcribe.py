"""A video file in, text, captions and speech out: `python -m app.transcribe` and the page's "Transcribe a video".

The video is built from real Kaggle photos (OpenCV's mp4v writer): FULL and FLY, each letter held 0.8 s with a
0.4 s rest after it, and a longer rest (no hand) between the words, which ends the first word without a `space`.
The CLI must print exactly those words, time one caption per word where its letters were shown, and speak them;
the server must refuse a damaged file, a file that is not a video, an over-long one and an oversized one at once,
say so for a video without a hand, and keep no file of any; the page shows an upload's transcript in Chromium.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
import wave
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.conftest import HANG_GUARD_S, ROOT, Server, kaggle_photos, webcam_jpeg

FPS = 15
WORDS = ["FULL", "FLY"]
HOLD_S, REST_S, PAUSE_S, LEAD_S = 0.8, 0.4, 1.2, 0.5
MAX_DURATION_S = 20  # the test server's limit (SIGN2SOUND_TRANSCRIBE_MAX_DURATION_S)


def write_video(path: Path, parts: list[tuple[np.ndarray, float]], fps: int = FPS) -> Path:
    h, w = parts[0][0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    assert writer.isOpened()
    for image, seconds in parts:
        for _ in range(round(seconds * fps)):
            writer.write(image)
    writer.release()
    return path


def photo(label: str) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(webcam_jpeg(kaggle_photos(label, 1)[0], quality=95), np.uint8), cv2.IMREAD_COLOR)


def word_starts() -> list[float]:
    """When each word's first letter appears in the video."""
    starts, t = [], LEAD_S
    for word in WORDS:
        starts.append(t)
        t += len(word) * (HOLD_S + REST_S) + PAUSE_S
    return starts


def spelled_parts(words: list[str] = WORDS) -> list[tuple[np.ndarray, float]]:
    """`words` spelled as the module's docstring says: the parts of write_video."""
    rest = photo("nothing")  # a background without a hand
    parts = [(rest, LEAD_S)]
    for word in words:
        for letter in word:
            parts += [(photo(letter), HOLD_S), (rest, REST_S)]
        parts.append((rest, PAUSE_S))
    return parts


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("videos")
    rest = photo("nothing")
    spelled = write_video(folder / "spelled.mp4", spelled_parts())
    damaged = folder / "damaged.mp4"
    damaged.write_bytes(spelled.read_bytes()[:len(spelled.read_bytes()) // 2])
    text = folder / "notes.mp4"
    text.write_text("not a video, whatever its name says\n" * 50)
    small = cv2.resize(rest, (64, 48))
    return {"spelled": spelled, "damaged": damaged, "text": text,
            "picture": _write(folder / "hand.jpg", webcam_jpeg(kaggle_photos("F", 1)[0])),
            "long": write_video(folder / "long.mp4", [(small, MAX_DURATION_S + 5)]),
            "no_hand": write_video(folder / "empty.mp4", [(rest, 2.0)])}


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_the_cli_prints_the_words_and_writes_timed_captions_speech_and_json(videos, tmp_path):
    out = {kind: tmp_path / f"out.{kind}" for kind in ("srt", "vtt", "wav", "json")}
    done = subprocess.run([sys.executable, "-m", "app.transcribe", str(videos["spelled"]),
                           *[a for kind, path in out.items() for a in (f"--{kind}", str(path))]],
                          cwd=ROOT, capture_output=True, text=True, timeout=HANG_GUARD_S)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout == " ".join(WORDS) + "\n"  # the transcript and nothing else
    assert "100%" in done.stderr  # the progress bar

    cues = out["srt"].read_text().strip().split("\n\n")
    assert [c.splitlines()[0] for c in cues] == ["1", "2"] and [c.splitlines()[2] for c in cues] == WORDS

    def seconds(stamp: str) -> float:
        h, m, s = stamp.replace(",", ".").split(":")
        return int(h) * 3600 + int(m) * 60 + float(s)

    times = [[seconds(x) for x in c.splitlines()[1].split(" --> ")] for c in cues]
    for (start, end), first, word in zip(times, word_starts(), WORDS):
        # from its first letter (its hold begins with it) to its last letter's end, within a frame or two
        assert abs(start - first) <= 2 / FPS, (word, start, first)
        last_letter_end = first + len(word) * (HOLD_S + REST_S) - REST_S
        assert abs(end - last_letter_end) <= 2 / FPS, (word, end, last_letter_end)
    assert out["vtt"].read_text().startswith("WEBVTT\n\n00:00:00.5")

    with wave.open(str(out["wav"])) as w:
        pcm = np.frombuffer(w.readframes(w.getnframes()), np.int16)
        assert w.getnframes() / w.getframerate() > 0.5  # two words spoken
    assert np.sqrt(np.mean(pcm.astype(np.float64) ** 2)) > 300  # sound, not silence

    result = json.loads(out["json"].read_text())
    assert result["text"] == " ".join(WORDS) and [w["raw"] for w in result["words"]] == WORDS
    letters = [x for w in result["words"] for x in w["letters"]]
    assert "".join(x["letter"] for x in letters) == "".join(WORDS)
    assert all(0.6 <= x["confidence"] <= 1 for x in letters)
    assert all(isinstance(w["alternatives"], list) for w in result["words"])


def test_the_cli_says_why_a_file_cannot_be_read(videos, capsys):
    from app.transcribe import main

    assert main([str(videos["text"]), "--quiet"]) == 1
    out, err = capsys.readouterr()
    assert out == "" and "not a video" in err


def test_the_cli_reads_with_a_personal_model_its_key_opens(videos, tmp_path, monkeypatch, capsys):
    import shutil

    from app.live.personal import PersonalStore, new_key
    from app.transcribe import main
    from tests.conftest import SHIPPED_CHECKPOINT

    monkeypatch.setenv("SIGN2SOUND_INSTANCE_DIR", str(tmp_path))
    store, key = PersonalStore(tmp_path / "personal", 10, 2**30), new_key()
    staged = store.staging()
    shutil.copy(SHIPPED_CHECKPOINT, staged / "model.pth")  # a personal model is a checkpoint of the same kind
    (staged / "samples.npz").write_bytes(b"")
    store.commit(key, staged)
    assert main([str(videos["spelled"]), "--quiet", "--personal-key", key]) == 0
    assert capsys.readouterr().out == " ".join(WORDS) + "\n"
    assert main([str(videos["spelled"]), "--quiet", "--personal-key", new_key()]) == 1  # a key that opens nothing
    assert main([str(videos["spelled"]), "--quiet", "--personal-key=-" + new_key()[1:]]) == 1  # an option-like key
    out, err = capsys.readouterr()
    assert out == "" and "no personal model" in err


def test_new_keys_never_start_with_a_dash():
    """A key starting with "-" is read by a command line as an option; token_urlsafe starts one key in 64 so."""
    from app.live.personal import new_key

    assert not any(new_key().startswith("-") for _ in range(3000))


@pytest.fixture(scope="module")
def video_server(tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("instance"), env={"SIGN2SOUND_TRANSCRIBE_MAX_DURATION_S": str(MAX_DURATION_S),
                                                         "SIGN2SOUND_TRANSCRIBE_MAX_MB": "1"}).start()
    yield s
    s.stop()


def post(base: str, data: bytes, **headers) -> tuple[int, dict]:
    """POST a video to the server at `base` (its URL): (HTTP status, reply)."""
    request = urllib.request.Request(base + "/api/videos", data=data, method="POST",
                                     headers={"Content-Type": "application/octet-stream", **headers})
    try:
        with urllib.request.urlopen(request, timeout=60) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def follow(base: str, job_id: str) -> dict:
    """The video's job once it is read (or failed), polled at the server at `base`."""
    deadline = time.monotonic() + HANG_GUARD_S
    while time.monotonic() < deadline:
        with urllib.request.urlopen(f"{base}/api/videos/{job_id}", timeout=60) as reply:
            job = json.loads(reply.read())
        if job["status"] != "reading":
            return job
        time.sleep(0.2)
    pytest.fail("the video was not read in time")


@pytest.mark.parametrize("name, status, code", [
    ("damaged", 400, "video_corrupt"), ("text", 400, "not_video"), ("picture", 400, "not_video"),
    ("long", 400, "video_too_long")])
def test_the_server_refuses_what_it_cannot_transcribe_and_keeps_nothing(video_server, videos, name, status, code):
    got, reply = post(video_server.url, videos[name].read_bytes())
    assert (got, reply["error"]["code"]) == (status, code) and reply["error"]["message"], reply
    assert list((video_server.instance_dir / "videos").iterdir()) == []


def test_uploads_from_another_site_oversized_or_without_a_hand_are_refused_leaving_nothing(video_server, videos):
    status, reply = post(video_server.url, videos["no_hand"].read_bytes(), **{"Sec-Fetch-Site": "cross-site"})
    assert (status, reply["error"]["code"]) == (403, "cross_site")  # another site's page cannot post one
    status, reply = post(video_server.url, b"\0" * (2 * 2**20))
    assert (status, reply["error"]["code"]) == (413, "video_too_large")
    status, job = post(video_server.url, videos["no_hand"].read_bytes())
    assert status == 202
    job = follow(video_server.url, job["id"])
    assert (job["status"], job["error"]["code"]) == ("failed", "video_no_hand")
    assert list((video_server.instance_dir / "videos").iterdir()) == []


def test_the_page_transcribes_an_upload(video_server, videos):
    from tests.test_page_e2e import launch

    expect = pytest.importorskip("playwright.sync_api").expect
    for browser in launch([]):
        page = browser.new_page()
        problems = []
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.goto(video_server.url + "/?landmarks=server")
        page.click("#transcribe-panel summary")
        page.set_input_files("#transcribe-file", str(videos["spelled"]))
        page.click("#transcribe-start")
        expect(page.locator("#transcribe-text")).to_have_text(" ".join(WORDS), timeout=120_000)
        expect(page.locator("#transcribe-status")).to_contain_text("2 words")
        srt = page.get_attribute("#transcribe-srt", "href")
        with urllib.request.urlopen(video_server.url + srt, timeout=60) as reply:
            assert reply.read().decode().split("\n\n")[1].splitlines()[2] == WORDS[1]
        assert page.locator("#transcribe-video track").get_attribute("src").endswith("/captions.vtt")
        expect(page.locator("#transcribe-audio")).to_be_visible()
        page.set_input_files("#transcribe-file", str(videos["text"]))  # a refusal is said in plain words
        page.click("#transcribe-start")
        expect(page.locator("#transcribe-status")).to_contain_text("not a video this server can read")
        assert problems == []
