"""Server text-to-speech: text -> WAV bytes with espeak-ng, serialised and cached by text.

The engine is the `espeak-ng` command (`--stdout`: WAV on a pipe, ~10 ms a word), one process per text.
pyttsx3 drives the same library in-process but lost audio here: its espeak driver writes the file before
appending the last buffer of samples, and under pytest's output capture it wrote header-only files for a
sentence; its one cached engine per process also needs all callers serialised. A subprocess has no shared
state; one lock still keeps synthesis to one at a time so speech never takes more than one core.
Callers run `render` off the Socket.IO event loop. Without espeak-ng (or with speech disabled) `available`
is False and the page speaks with the browser's speechSynthesis.
"""
from __future__ import annotations

import io
import logging
import shutil
import subprocess
import threading
import wave
from collections import OrderedDict, deque

log = logging.getLogger(__name__)

MAX_TEXT = 500  # characters; a sentence, not a book
SYNTH_TIMEOUT_S = 10
WAITING = 3  # texts one client may have waiting to be spoken; a newer one drops the oldest


class SpeechUnavailable(RuntimeError):
    """Server TTS is off or missing: the client speaks with speechSynthesis."""


class Speech:
    def __init__(self, enabled: bool = True, rate: int = 160, cache_size: int = 256):
        self.rate = rate
        self.cache_size = cache_size
        self._cache: OrderedDict[str, bytes] = OrderedDict()
        self._lock = threading.Lock()
        self._command = shutil.which("espeak-ng") if enabled else None
        self.error: str | None = None
        if not enabled:
            self.error = "disabled in config.yaml (speech.enabled)"
        elif self._command is None:
            self.error = "espeak-ng is not installed"
            log.warning("server text-to-speech unavailable (%s); the browser will speak", self.error)

    @property
    def available(self) -> bool:
        return self._command is not None

    def render(self, text: str) -> bytes:
        """WAV bytes (16-bit mono) speaking `text`. Blocks for the synthesis (~10-30 ms a word)."""
        text = " ".join(text.split())[:MAX_TEXT]
        if not text:
            raise ValueError("nothing to speak")
        if not self.available:
            raise SpeechUnavailable(self.error)
        with self._lock:
            if text in self._cache:
                self._cache.move_to_end(text)
                return self._cache[text]
            wav = self._synthesise(text)
            self._cache[text] = wav
            if len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
            return wav

    def _synthesise(self, text: str) -> bytes:
        # "--" ends the options: a text that starts with "-" is spoken, never parsed as a flag.
        done = subprocess.run([self._command, "-s", str(self.rate), "--stdout", "--", text],
                              capture_output=True, timeout=SYNTH_TIMEOUT_S)
        if done.returncode != 0:
            raise RuntimeError(f"espeak-ng failed ({done.returncode}): {done.stderr.decode(errors='replace')[:200]}")
        return _fix_wav_header(done.stdout)


def _fix_wav_header(streamed: bytes) -> bytes:
    """espeak-ng writes a WAV to a pipe before it knows the length (the header says ~2^31 frames): rewrite it."""
    with wave.open(io.BytesIO(streamed)) as w:
        params = w.getparams()
        pcm = w.readframes(w.getnframes())
    if not pcm:
        raise RuntimeError("espeak-ng produced no audio")
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(params.nchannels)
        w.setsampwidth(params.sampwidth)
        w.setframerate(params.framerate)
        w.writeframes(pcm)
    return out.getvalue()


class SpeechQueue:
    """One client's texts waiting to be spoken, spoken one at a time by one speaker. At most WAITING wait: a client
    asking faster than speech renders (~30 ms for 500 characters, one synthesis at a time for the whole server)
    holds one speaker and three texts, not a thread per request, and cannot keep everyone else's speech waiting."""

    def __init__(self, waiting: int = WAITING):
        self._texts: deque[str] = deque(maxlen=waiting)
        self._speaking = False
        self._lock = threading.Lock()

    def put(self, text: str) -> bool:
        """Queue `text`; True when no speaker is running and the caller must start one."""
        with self._lock:
            self._texts.append(text)
            start, self._speaking = not self._speaking, True
            return start

    def next(self) -> str | None:
        """The speaker's next text, or None: the queue is empty and the speaker stops."""
        with self._lock:
            if self._texts:
                return self._texts.popleft()
            self._speaking = False
            return None
