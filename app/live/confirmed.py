"""Free spelling teaches too: the words a user confirms become labelled frames of their hand (source "words").

While the user spells freely (not calibrating, not practising) the current word's frames are kept per committed
letter (app.live.word_frames, the rule practice uses; at most `practice.max_frames_per_word`). A word is confirmed
by a `choose` (a suggestion, "keep it" or an alternative: the chosen spelling, at once), or, as decoded, when the
next word ends and it was neither undone nor replaced meanwhile; its frames then join the user's samples, each
letter's labelled with the confirmed word's letter in its place. An undone word (undo, its space deleted, the text
cleared) teaches nothing. One word at most waits for confirmation. Measured before it shipped: docs/EXPERIMENTS.md,
"Learning from free spelling".
"""
from __future__ import annotations

from typing import Callable

from app.live.word_frames import WordFrames

SOURCE = "words"


class ConfirmedWords:
    """One client's free spelling: the word being spelled, the last finished word waiting for confirmation (its
    frames, as signed, as decoded), and where confirmed words go (`gathered()`: the session's
    app.live.learning.Gathered, made on first use). Not thread-safe: the session's lock."""

    def __init__(self, max_frames: int, gathered: Callable[[], object]):
        self.max_frames = int(max_frames)
        self.gathered = gathered
        self.word = WordFrames(self.max_frames)
        self.pending: tuple[WordFrames, str, str] | None = None  # (frames, raw, decoded)

    def frame(self, hand, aspect: float, label: str) -> None:
        self.word.frame(hand, aspect, label)

    def event(self, event: dict) -> None:
        """The speller's letters and deletes."""
        self.word.event(event)

    def finished(self, raw: str, value: str, chosen: bool) -> None:
        """A word ended (signed as `raw`, decoded or chosen as `value`): the word before it is confirmed; this one
        is too when the user chose it, else it waits for the next."""
        self._confirm()
        word, self.word = self.word, WordFrames(self.max_frames)
        self.pending = (word, raw, value)
        if chosen:
            self._confirm()

    def replaced(self, value: str) -> None:
        """The user chose `value` in place of the last finished word: it is confirmed as that, at once."""
        if self.pending is not None:
            word, raw, _ = self.pending
            self.pending = (word, raw, value)
            self._confirm()

    def undone(self) -> None:
        """The last finished word was undone (its spelling restored, or its space deleted): it teaches nothing."""
        self.pending = None

    def clear(self) -> None:
        self.word.clear()
        self.pending = None

    def _confirm(self) -> None:
        if self.pending is None:
            return
        word, raw, value = self.pending
        self.pending = None
        gathered = self.gathered()
        if word.label(value, raw, gathered, SOURCE, signs=False):
            gathered.words += 1
