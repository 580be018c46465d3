"""Server text-to-speech: text -> WAV bytes with pyttsx3 on espeak-ng, serialised and cached by text.

pyttsx3.init() hands out one cached engine per process, so two renders at once would share (and lose)
its output: one lock serialises them. `say()` would shell out to `aplay` on the server; the browser plays
the audio instead, so the engine only ever writes WAV files (save_to_file). Callers run `render` off the
Socket.IO event loop. When the engine cannot start (no espeak-ng, speech disabled), `available` is False
and the page falls back to the browser's speechSynthesis.
"""
from __future__ import annotations

import contextlib
import io
import logging
import os
import tempfile
import threading
from collections import OrderedDict

log = logging.getLogger(__name__)

MAX_TEXT = 500  # characters; a sentence, not a book


class SpeechUnavailable(RuntimeError):
    """Server TTS is off or missing: the client speaks with speechSynthesis."""


class Speech:
    def __init__(self, enabled: bool = True, rate: int = 160, cache_size: int = 256):
        self.rate = rate
        self.cache_size = cache_size
        self._cache: OrderedDict[str, bytes] = OrderedDict()
        self._lock = threading.Lock()
        self._engine = None
        self.error: str | None = None
        if not enabled:
            self.error = "disabled in config.yaml (speech.enabled)"
            return
        try:
            import pyttsx3

            self._engine = pyttsx3.init("espeak")
            self._engine.setProperty("rate", rate)
        except Exception as exc:  # ImportError, or espeak-ng's library missing (OSError, RuntimeError)
            self.error = f"{type(exc).__name__}: {exc}"
            log.warning("server text-to-speech unavailable (%s); the browser will speak", self.error)

    @property
    def available(self) -> bool:
        return self._engine is not None

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
        fd, path = tempfile.mkstemp(prefix="sign2sound-", suffix=".wav")
        os.close(fd)
        try:
            # pyttsx3 prints "Audio saved to ..." for every file; keep it out of the server's output.
            with contextlib.redirect_stdout(io.StringIO()):
                self._engine.save_to_file(text, path)
                self._engine.runAndWait()
            with open(path, "rb") as f:
                wav = f.read()
        finally:
            os.unlink(path)
        if len(wav) <= 44:  # a header without samples: the engine failed silently
            raise RuntimeError(f"speech engine produced no audio for {text!r}")
        return wav
