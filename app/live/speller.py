"""The speller: per-frame predictions -> committed letters, words and a sentence. Pure: no I/O, no clock.

A letter is the hand held still, whatever the model's confidence. Two rules commit one:
- A confident hold (as the speller always read): a label that has been the prediction for `hold_frames` frames in
  a row, each at or above `min_confidence`, commits at once.
- A still hand: given each frame's hand (its feature vector, ml.features.hand_features), the frames whose hand
  stays within `still_motion` (palm widths, shape and wrist) of where it settled form a hold. A hold of at least
  `still_frames` frames that committed nothing commits, when the hand moves on or rests (or the word ends), the
  letter likeliest over its frames, marked `unsure` when that likelihood is below
  `min_confidence`: a stranger's letter the model reads at 0.45 is written, flagged, instead of lost. An unsure
  hold needs `unsure_frames` frames (one more): a hand pausing on its way (rising into view, changing shape) for just
  `still_frames` is read unsure far more often than a letter held.
A hand moving (a frame farther than `still_motion` from its hold) breaks any hold, so the shapes a hand passes
through between two letters commit nothing (J and Z, which are motions, keep the confident rule alone).
The same label is not committed again until it is re-armed by `rest_frames` frames of `nothing` (or no hand), so a
double letter ("LL") needs a short rest; a different label commits directly ("AB"). A low-confidence frame breaks
the confident hold but does not re-arm: a hand moving between two shapes must not repeat the letter it came from.
`space` finishes the word, `del` deletes the last character (a letter, or the space that finished the last word,
which makes that word the current one again).

For the word decoder each committed letter keeps its evidence (app.live.decoder.Letter): the model's probabilities
averaged over the frames that held it, and what the speller saw (a weak hold, a repeat after a rest, a letter
signed right after a delete). It also keeps the "gap" before each letter: the model's mean probabilities over the
frames with a hand that committed nothing (a hold too short or too unsure, not the previous letter still held),
where a letter the user signed but the speller missed shows, and its period: the frames with a hand since the
letter before was committed (the user's pace). `letters` is the current word's; `finished` the last finished
word's, and `finished_tail` the gap after its last letter.
"""
from __future__ import annotations

from collections import deque

import numpy as np

from app.live.decoder import LETTERS, Gap, Letter, mean

REST = "nothing"
SPACE = "space"
DELETE = "del"
MOTIONS = ("J", "Z")  # letters that are a movement of the hand, never a still one
GAP_KEEP = 64  # frames of a gap kept (4 s at 15 fps): a hand shown for minutes without a commit stays bounded
# A visitor's state stays bounded however long they sign without a `space`: a word this long is finished as if
# `space` were signed (no word is; the decoder takes up to ~8 ms for 40 letters, 0.2 s for 300, 7 s for 1,000), and
# the transcript, sent with every frame, keeps its latest characters (the oldest words go first).
MAX_WORD = 40
MAX_TEXT = 1000


def motion(a: np.ndarray, b: np.ndarray) -> float:
    """How far hand `a` is from hand `b` (feature vectors: 63 shape values, then optionally wrist x y z and palm
    size), in palm widths: the landmarks' mean displacement plus the wrist's."""
    far = float(np.linalg.norm((a[:63] - b[:63]).reshape(21, 3), axis=1).mean())
    if len(a) > 66:
        far += float(np.linalg.norm(a[63:66] - b[63:66]) / max(float(b[66]), 1e-6))
    return far


class Speller:
    def __init__(self, hold_frames: int = 4, min_confidence: float = 0.6, rest_frames: int = 1,
                 still_frames: int = 3, still_motion: float = 0.25, unsure_frames: int = 4):
        if min(hold_frames, rest_frames, still_frames, unsure_frames) < 1:
            raise ValueError("hold_frames, rest_frames, still_frames and unsure_frames must be >= 1")
        self.hold_frames = hold_frames
        self.min_confidence = min_confidence
        self.rest_frames = rest_frames
        self.still_frames, self.still_motion, self.unsure_frames = still_frames, still_motion, unsure_frames
        self.text = ""  # the whole transcript; the current word is what follows the last space
        self._candidate: str | None = None
        self._held = 0
        self._rested = 0
        self._last: str | None = None  # the committed label that is not re-armed yet
        self._held_probs: list = []  # the model's probabilities for each frame of the current hold
        self._corrected = False  # a delete came last: the next letter is the user's correction
        self._gap = deque(maxlen=GAP_KEEP)  # probabilities of the latest frames that committed nothing
        self._since_commit = 0  # frames with a hand since the last letter was committed: this user's pace
        # The still hold: the hand's summed feature vectors since it settled, and each frame's (label, probs)
        # (bounded like the gap: a hand held still for minutes keeps its latest GAP_KEEP frames, and its count)
        self._still_sum: np.ndarray | None = None
        self._still: deque = deque(maxlen=GAP_KEEP)
        self._still_n = 0
        self._still_gapped = 0  # of its frames, those counted in the gap
        self._still_done = False  # it committed a letter already
        self.letters: list[Letter] = []  # evidence for each letter of the current word
        self.finished: list[Letter] = []  # evidence for the last finished word
        self.finished_tail: Gap | None = None  # the gap after the last finished word's last letter

    @property
    def word(self) -> str:
        """The word being spelled (empty right after a space)."""
        return self.text.rsplit(" ", 1)[-1]

    def update(self, label: str | None, confidence: float, probs=None, points=None) -> list[dict]:
        """Feed one frame's prediction (None = no hand), optionally the model's probabilities of A-Z
        (app.live.decoder.letter_probs) and the frame's hand (its ml.features.hand_features vector; without it
        only the confident rule commits); returns the events it caused (often none)."""
        if label is None or label == REST:
            events = self._settle()  # the hand rested: the still hold it left commits
            self._candidate, self._held = None, 0
            self._rested += 1
            if self._rested >= self.rest_frames:
                self._last = None
            return self._bounded(events)
        self._rested = 0
        self._since_commit += 1
        events = self._follow(label, np.asarray(points, np.float32).ravel()) if points is not None else []
        gapped = probs is not None and label != self._last and label not in (SPACE, DELETE)
        if gapped:
            self._gap.append(probs)
        if points is not None:
            self._still.append((label, probs))
            self._still_n += 1
            self._still_gapped += gapped
        return self._bounded(events + self._hold(label, confidence, probs))

    def _bounded(self, events: list[dict]) -> list[dict]:
        return events + self._commit(SPACE) if len(self.letters) >= MAX_WORD else events

    def _follow(self, label: str, points: np.ndarray) -> list[dict]:
        """Track the still hold: a hand farther than still_motion from where it settled ends it (and the
        confident hold, unless the letter is a motion)."""
        events = []
        if self._still_sum is not None and motion(points, self._still_sum / self._still_n) > self.still_motion:
            events = self._settle()
            if label not in MOTIONS:
                self._candidate, self._held = None, 0
        self._still_sum = points.copy() if self._still_sum is None else self._still_sum + points
        return events

    def _hold(self, label: str, confidence: float, probs) -> list[dict]:
        """The confident rule: `hold_frames` frames of one label at `min_confidence` commit it at once."""
        if confidence < self.min_confidence:
            self._candidate, self._held = None, 0
            return []
        if label == self._candidate:
            self._held += 1
        else:
            self._candidate, self._held, self._held_probs = label, 1, []
        if self._held <= self.hold_frames:
            self._held_probs.append((confidence, probs))
        if self._held != self.hold_frames or label == self._last:
            return []
        self._still_done = True
        held = self._held_probs
        return self._commit(label, self._repeats(label), held, len([p for _, p in held if p is not None]))

    def _settle(self) -> list[dict]:
        """The still hold ends: a long enough one that committed nothing commits the letter likeliest over its
        frames, unsure below min_confidence (then only after unsure_frames)."""
        hold, events = self._still, []
        vectors = [p for label, p in hold if p is not None and label not in (SPACE, DELETE)]
        if not self._still_done and self._still_n >= self.still_frames and 2 * len(vectors) > len(hold):
            probs = mean(vectors)
            order = sorted(range(len(LETTERS)), key=probs.__getitem__, reverse=True)
            label, likely = LETTERS[order[0]], probs[order[0]]
            unsure = likely < self.min_confidence
            if label != self._last and (not unsure or self._still_n >= self.unsure_frames):
                events = self._commit(label, self._repeats(label), [(likely, p) for p in vectors],
                                      self._still_gapped, LETTERS[order[1]] if unsure else None)
        self._drop_still()
        return events

    def _repeats(self, label: str) -> bool:
        """Committing `label` repeats the letter before after a rest (a double letter)."""
        repeat = self._last is None and bool(self.letters) and self.letters[-1].label == label
        self._last = label
        return repeat

    def finish_word(self) -> list[dict]:
        """End the current word as the `space` sign does (the keyboard's Space); a letter still held is
        committed first."""
        return self._settle() + self._commit(SPACE)

    def replace_finished(self, word: str) -> None:
        """Put `word` in place of the last finished word (the decoder's choice, or the user's)."""
        head, last = self.text[:-1].rpartition(" ")[::2] if self.text.endswith(" ") else ("", "")
        if last:
            self.text = (head + " " if head else "") + word + " "

    def undo(self) -> list[dict]:
        """Delete the last character, as the `del` sign does."""
        return self._delete()

    def reset(self) -> list[dict]:
        """Clear the text; the hold state too, so a letter still held is not committed into the new text."""
        had_text = bool(self.text)
        self.text = ""
        self._candidate, self._held = None, 0
        self.letters, self.finished, self._corrected, self.finished_tail = [], [], False, None
        self._gap.clear()
        self._drop_still()
        self._since_commit = 0
        return [{"type": "clear"}] if had_text else []

    def _drop_still(self) -> None:
        """Forget the still hold without committing it (a reset, a delete)."""
        self._still.clear()
        self._still_sum, self._still_n, self._still_gapped, self._still_done = None, 0, 0, False

    def _commit(self, label: str, repeat: bool = False, held: list | None = None, own: int = 0,
                second: str | None = None) -> list[dict]:
        """Commit `label`: a letter with its hold's (confidence, probabilities) `held`, the last `own` frames of
        the gap being the hold's own, and, for a letter committed unsure, the model's `second` guess."""
        if label == DELETE:
            return self._delete()
        if label == SPACE:
            word = self.word
            if not word:  # a space at the start or a second space adds nothing
                return []
            self.text += " "
            if len(self.text) > MAX_TEXT:
                self.text = self.text[self.text.index(" ", len(self.text) - MAX_TEXT) + 1:]
            self.finished, self.letters = self.letters, []
            self.finished_tail = Gap.of(list(self._gap))
            self._gap.clear()
            self._since_commit = 0
            return [{"type": "space"}, {"type": "word", "value": word}]
        self.text += label
        held = held or []
        vectors = [p for _, p in held if p is not None]
        gap = list(self._gap)[:max(0, len(self._gap) - own)]  # the hold's own frames end the gap
        self._gap.clear()
        self.letters.append(Letter(
            label, probs=mean(vectors),
            weak=sum(c for c, _ in held) / len(held) < (1 + self.min_confidence) / 2 if held else False,
            repeat=repeat, corrected=self._corrected, gap=Gap.of(gap), period=self._since_commit,
            unsure=second is not None))
        self._since_commit = 0
        self._corrected = False
        event = {"type": "letter", "value": label}
        return [event | {"unsure": True, "second": second} if second else event]

    def _delete(self) -> list[dict]:
        self._gap.clear()  # what was shown before a delete is not a letter of the word
        self._drop_still()
        if not self.text:
            return []
        if self.text.endswith(" "):  # the last word becomes the current one again
            self.text = self.text[:-1]
            word = self.word
            known = [x.label for x in self.finished] == list(word)
            self.letters = self.finished if known else [Letter(c) for c in word]
            self.finished = []
        else:
            self.text = self.text[:-1]
            self.letters = self.letters[:-1]
            self._corrected = True
        return [{"type": "del"}]
