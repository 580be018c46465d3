"""Server speech: real WAV from espeak-ng, serialised, cached; the app runs without it."""
from __future__ import annotations

import io
import json
import threading
import urllib.request
import wave

import numpy as np
import pytest

from app.live.speech import Speech, SpeechQueue, SpeechUnavailable


def read_wav(audio: bytes) -> tuple[float, float]:
    """(duration s, RMS of the 16-bit samples)."""
    with wave.open(io.BytesIO(audio)) as w:
        assert (w.getnchannels(), w.getsampwidth()) == (1, 2)
        samples = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).astype(np.float64)
        return len(samples) / w.getframerate(), float(np.sqrt(np.mean(samples ** 2)))


@pytest.fixture(scope="module")
def speech() -> Speech:
    s = Speech()
    if not s.available:
        pytest.skip(f"server text-to-speech unavailable ({s.error}); install espeak-ng")
    return s


def test_a_word_is_audible_and_about_a_word_long(speech):
    duration, rms = read_wav(speech.render("HELLO"))
    assert 0.3 < duration < 2.0
    assert rms > 1000  # espeak-ng speech is in the thousands; silence is 0


def test_longer_text_takes_longer(speech):
    short, _ = read_wav(speech.render("CAB"))
    long, rms = read_wav(speech.render("THE QUICK BROWN FOX JUMPS OVER THE LAZY DOG"))
    assert long > 2 * short
    assert 1.5 < long < 6.0 and rms > 1000


def test_renders_are_cached_by_text(speech):
    first = speech.render("CACHED")
    assert speech.render("CACHED") is first
    assert speech.render("  CACHED ") is first  # whitespace does not make a new text


def test_concurrent_renders_each_get_their_own_audio(speech):
    """Renders from many threads at once each get their own, complete audio."""
    words = [f"WORD{i}" for i in range(8)] + ["A MUCH LONGER SENTENCE THAN THE OTHERS"]
    out: dict[str, bytes] = {}
    threads = [threading.Thread(target=lambda w=w: out.__setitem__(w, speech.render(w))) for w in words]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    durations = {w: read_wav(out[w])[0] for w in words}
    assert all(read_wav(out[w])[1] > 1000 for w in words)
    assert durations[words[-1]] > max(durations[w] for w in words[:-1])


def test_the_cache_is_bounded():
    s = Speech(cache_size=2)
    if not s.available:
        pytest.skip(f"server text-to-speech unavailable ({s.error})")
    first = s.render("ONE")
    s.render("TWO")
    s.render("THREE")
    assert s.render("ONE") is not first


def test_empty_text_is_refused(speech):
    with pytest.raises(ValueError):
        speech.render("   ")


def test_disabled_speech_says_so():
    s = Speech(enabled=False)
    assert not s.available and "disabled" in s.error
    with pytest.raises(SpeechUnavailable):
        s.render("HELLO")


def test_without_espeak_ng_speech_is_unavailable(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    s = Speech()
    assert not s.available and "espeak-ng" in s.error
    with pytest.raises(SpeechUnavailable):
        s.render("HELLO")


def test_without_server_speech_the_app_runs_and_says_tts_false(server_without_speech):
    server = server_without_speech
    status = json.load(urllib.request.urlopen(server.url + "/api/status"))
    assert status["tts"] is False
    page = urllib.request.urlopen(server.url + "/").read().decode()
    assert 'id="status-tts"' in page


def test_a_clients_speech_waits_in_a_bounded_queue_for_its_one_speaker():
    texts = SpeechQueue(waiting=3)
    assert texts.put("ONE") is True  # no speaker yet: the caller starts one
    assert texts.next() == "ONE"  # ... which is speaking it while the client asks for more, faster than speech
    assert [texts.put(t) for t in ("TWO", "THREE", "FOUR", "FIVE")] == [False] * 4  # no second speaker
    assert [texts.next() for _ in range(4)] == ["THREE", "FOUR", "FIVE", None]  # the oldest waiting one dropped
    assert texts.put("SIX") is True  # the speaker stopped at None: the next text starts one again
