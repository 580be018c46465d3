"""Practice on the live connection: the page names a word, the user spells it, each letter is scored, and the
frames of each letter, labelled with the letter meant, join the user's samples (app.live.learning).

client `practice` {"word": "CAB"}  ack {"word": "CAB"}: the next finished word (the `space` sign, client `space`,
                                   a `choose`) is compared with it: its word event gains "practice": {"target",
                                   "correct": the spelling as signed is the word, "letters": [{"expected", "read":
                                   the letter read in its place or null when missed, "ok"}]}. {"word": null} ends
                                   practice (ack {"word": null}). A word other than 1 to 40 letters A-Z: `error`
                                   bad_word (ack null).

Which frames are a letter's, and the letter they are labelled with: app.live.word_frames.
"""
from __future__ import annotations

import re

from flask import current_app, request

from app import socketio
from app.live import learning
from app.live.blocking import run_blocking
from app.live.frames import FrameError
from app.live.session import current_session
from app.live.speller import MAX_WORD
from app.live.word_frames import WordFrames, align

WORD = re.compile(f"[A-Z]{{1,{MAX_WORD}}}")


class Practice:
    """One client's practice: the word it spells now and that word's frames (app.live.word_frames). Not
    thread-safe: the session's lock."""

    def __init__(self, max_frames: int):
        self.target: str | None = None
        self.word = WordFrames(max_frames)

    def start(self, target: str | None) -> None:
        self.target = target
        self.clear()

    def clear(self) -> None:
        self.word.clear()

    def frame(self, hand, aspect: float, label: str) -> None:
        if self.target is not None:
            self.word.frame(hand, aspect, label)

    def event(self, event: dict) -> None:
        if self.target is not None:
            self.word.event(event)

    def finish(self, raw: str, gathered: learning.Gathered | None) -> dict | None:
        """The word ended as `raw` (as signed): its score against the target, and its frames into `gathered`
        labelled with the letters meant (none after a forget). None when no word is being practised."""
        if self.target is None:
            return None
        target, self.target = self.target, None
        letters = [{"expected": target[t], "read": None if r is None else raw[r],
                    "ok": r is not None and target[t] == raw[r]} for t, r in align(target, raw) if t is not None]
        if gathered is not None:
            self.word.label(target, raw, gathered, "practice")
        self.clear()
        return {"target": target, "correct": raw == target, "letters": letters}


@socketio.on("practice")
def on_practice(payload=None, *_):
    word = payload.get("word", "missing") if isinstance(payload, dict) else "missing"
    session = current_session()
    if session is None or not (word is None or (isinstance(word, str) and WORD.fullmatch(word))):
        learning.error(request.sid, FrameError("bad_word", f'practice takes {{"word": 1 to {MAX_WORD} letters '
                                                           'A-Z}, or {"word": null} to stop practising'))
        return None
    config = current_app.config["SIGN2SOUND"]

    def start():
        with session.lock:  # between two frames
            if word is None:
                session.practice = None
                return
            learning.gathered(session, config["calibration"]["max_samples_per_class"])
            if session.spelling is not None:
                session.spelling.clear()  # practising, free spelling teaches nothing: its word waiting goes too
            if session.practice is None:
                session.practice = Practice(config["practice"]["max_frames_per_word"])
            session.practice.start(word)

    run_blocking(start)
    return {"word": word}
