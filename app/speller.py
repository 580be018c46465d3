"""The speller: per-frame predictions -> committed letters, words and a sentence. Pure: no I/O, no clock.

A label is committed once it has been the prediction for `hold_frames` frames in a row, each at or above
`min_confidence`. The same label is not committed again until it is re-armed by `rest_frames` frames of
`nothing` (or no hand), so a double letter ("LL") needs a short rest; a different label commits directly
("AB"). A low-confidence frame breaks the hold but does not re-arm: a hand moving between two shapes must
not repeat the letter it came from. `space` finishes the word, `del` deletes the last character (a letter,
or the space that finished the last word, which makes that word the current one again).
"""
from __future__ import annotations

REST = "nothing"
SPACE = "space"
DELETE = "del"


class Speller:
    def __init__(self, hold_frames: int = 4, min_confidence: float = 0.6, rest_frames: int = 1):
        if hold_frames < 1 or rest_frames < 1:
            raise ValueError("hold_frames and rest_frames must be >= 1")
        self.hold_frames = hold_frames
        self.min_confidence = min_confidence
        self.rest_frames = rest_frames
        self.text = ""  # the whole transcript; the current word is what follows the last space
        self._candidate: str | None = None
        self._held = 0
        self._rested = 0
        self._last: str | None = None  # the committed label that is not re-armed yet

    @property
    def word(self) -> str:
        """The word being spelled (empty right after a space)."""
        return self.text.rsplit(" ", 1)[-1]

    def update(self, label: str | None, confidence: float) -> list[dict]:
        """Feed one frame's prediction (None = no hand); returns the events it caused (often none)."""
        if label is None or label == REST:
            self._candidate, self._held = None, 0
            self._rested += 1
            if self._rested >= self.rest_frames:
                self._last = None
            return []
        self._rested = 0
        if confidence < self.min_confidence:
            self._candidate, self._held = None, 0
            return []
        if label == self._candidate:
            self._held += 1
        else:
            self._candidate, self._held = label, 1
        if self._held != self.hold_frames or label == self._last:
            return []
        self._last = label
        return self._commit(label)

    def undo(self) -> list[dict]:
        """Delete the last character, as the `del` sign does."""
        return self._delete()

    def reset(self) -> list[dict]:
        """Clear the text; the hold state too, so a letter still held is not committed into the new text."""
        had_text = bool(self.text)
        self.text = ""
        self._candidate, self._held = None, 0
        return [{"type": "clear"}] if had_text else []

    def _commit(self, label: str) -> list[dict]:
        if label == DELETE:
            return self._delete()
        if label == SPACE:
            word = self.word
            if not word:  # a space at the start or a second space adds nothing
                return []
            self.text += " "
            return [{"type": "space"}, {"type": "word", "value": word}]
        self.text += label
        return [{"type": "letter", "value": label}]

    def _delete(self) -> list[dict]:
        if not self.text:
            return []
        self.text = self.text[:-1]
        return [{"type": "del"}]
