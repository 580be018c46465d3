"""Practice on the live connection: the page names a word, the user spells it, each letter is scored, and the
frames of each letter, labelled with the letter meant, join the user's samples (app.live.learning).

client `practice` {"word": "CAB"}  ack {"word": "CAB"}: the next finished word (the `space` sign, client `space`,
                                   a `choose`) is compared with it: its word event gains "practice": {"target",
                                   "correct": the spelling as signed is the word, "letters": [{"expected", "read":
                                   the letter read in its place or null when missed, "ok"}]}. {"word": null} ends
                                   practice (ack {"word": null}). A word other than 1 to 40 letters A-Z: `error`
                                   bad_word (ack null).

Which frames are a letter's: those read as the committed letter between the commits before and after it (the
frames that moved between two letters, read as neither, are left out). The committed letters are aligned to the
target by edit distance, so a missed or an extra letter costs only itself: the letters after it keep their labels.
A letter read wrong is the point: its frames are labelled with the letter meant. The frames read as `del` in a word
that used it, and as `space` after its last letter, are samples of those two signs.
"""
from __future__ import annotations

import re
from collections import deque

from flask import current_app, request

from app import socketio
from app.live import learning
from app.live.blocking import run_blocking
from app.live.frames import FrameError
from app.live.session import current_session
from app.live.speller import DELETE, MAX_WORD, SPACE

WORD = re.compile(f"[A-Z]{{1,{MAX_WORD}}}")


def align(target: str, read: str) -> list[tuple[int | None, int | None]]:
    """Edit-distance alignment of `read` to `target`: pairs (target index or None for an extra letter read, read
    index or None for a letter missed), in order. Among alignments of least cost, a letter read in place of
    another (a misreading) is preferred to one missed beside one extra."""
    n, m = len(target), len(read)
    cost = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(n + 1):
        for j in range(m + 1):
            if i == 0 or j == 0:
                cost[i][j] = i + j
            else:
                cost[i][j] = min(cost[i - 1][j - 1] + (target[i - 1] != read[j - 1]),
                                 cost[i - 1][j] + 1, cost[i][j - 1] + 1)
    pairs, i, j = [], n, m
    while i or j:
        if i and j and cost[i][j] == cost[i - 1][j - 1] + (target[i - 1] != read[j - 1]):
            i, j = i - 1, j - 1
            pairs.append((i, j))
        elif i and cost[i][j] == cost[i - 1][j] + 1:
            i -= 1
            pairs.append((i, None))
        else:
            j -= 1
            pairs.append((None, j))
    return pairs[::-1]


class Practice:
    """One client's practice: the word it spells now, the frames with a hand since that word began (at most
    `max_frames`, the latest) and where each of its letters was committed. Not thread-safe: the session's lock."""

    def __init__(self, max_frames: int):
        self.target: str | None = None
        self.frames: deque = deque(maxlen=int(max_frames))  # (frame number, hand, aspect, label read)
        self.number = 0  # frames seen in this word
        self.commits: list[tuple[int, str]] = []  # (frame number, letter) of the word's letters
        self.deleted = False  # a `del` was signed in this word

    def start(self, target: str | None) -> None:
        self.target = target
        self.clear()

    def clear(self) -> None:
        self.frames.clear()
        self.number, self.commits, self.deleted = 0, [], False

    def frame(self, hand, aspect: float, label: str) -> None:
        if self.target is None:
            return
        self.number += 1
        if hand is not None:
            self.frames.append((self.number, hand, aspect, label))

    def event(self, event: dict) -> None:
        """Follow the speller's events: a letter committed at the latest frame, a delete taking the last back, a
        cleared text starting the word afresh."""
        if self.target is None:
            return
        if event["type"] == "clear":
            self.clear()
        elif event["type"] == "letter":
            self.commits.append((self.number, event["value"]))
        elif event["type"] == "del":
            self.deleted = True
            if self.commits:
                self.commits.pop()

    def finish(self, raw: str, gathered: learning.Gathered | None) -> dict | None:
        """The word ended as `raw` (as signed): its score against the target, and its frames into `gathered`
        labelled with the letters meant (none after a forget). None when no word is being practised."""
        if self.target is None:
            return None
        target, self.target = self.target, None
        pairs = align(target, raw)
        letters = [{"expected": target[t], "read": None if r is None else raw[r],
                    "ok": r is not None and target[t] == raw[r]} for t, r in pairs if t is not None]
        if gathered is not None and "".join(label for _, label in self.commits) == raw:  # the commits followed
            meant = {r: target[t] for t, r in pairs if t is not None and r is not None}
            self._label(meant, gathered)
        self.clear()
        return {"target": target, "correct": raw == target, "letters": letters}

    def _label(self, meant: dict[int, str], gathered: learning.Gathered) -> None:
        """Each frame read as a committed letter goes to the nearest commit of that letter between the commits
        around it; it is labelled with the letter that commit was meant as (none: an extra letter, left out)."""
        at = [number for number, _ in self.commits]
        takes: dict[int | str, list] = {}
        for number, hand, aspect, label in self.frames:
            if label in (DELETE, SPACE):
                if (label == DELETE and self.deleted) or (label == SPACE and (not at or number > at[-1])):
                    takes.setdefault(label, []).append((hand, aspect))
                continue
            near = [k for k, (n, letter) in enumerate(self.commits) if letter == label
                    and (k == 0 or at[k - 1] < number) and (k + 1 == len(at) or number < at[k + 1])]
            if near:
                takes.setdefault(min(near, key=lambda k: abs(at[k] - number)), []).append((hand, aspect))
        for which, frames in takes.items():
            label = which if isinstance(which, str) else meant.get(which)
            if label is None:
                continue
            take = gathered.new_take(label, "practice")
            for hand, aspect in frames:
                gathered.add(label, take, hand.landmarks, aspect, hand.is_left)



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
            if session.practice is None:
                session.practice = Practice(config["practice"]["max_frames_per_word"])
            session.practice.start(word)

    run_blocking(start)
    return {"word": word}
