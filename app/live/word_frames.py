"""Which frames of a spelled word are which letter's, labelled with the letter meant: what practice (the word asked
for) and free spelling (the word the user confirmed) teach a personal model, by one rule.

A letter's frames are those read as the committed letter between the commits before and after it (the frames that
moved between two letters, read as neither, are left out). The committed letters are aligned to the word meant by
edit distance, so a missed or an extra letter costs only itself: the letters after it keep their labels. A letter
read wrong is the point: its frames are labelled with the letter meant. Practice also keeps the frames read as `del`
in a word that used it, and as `space` after its last letter, as samples of those two signs.
"""
from __future__ import annotations

from collections import deque

from app.live.speller import DELETE, SPACE


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


class WordFrames:
    """One word being spelled: its frames with a hand (at most `max_frames`, the latest) and where each of its
    letters was committed. Not thread-safe: the session's lock."""

    def __init__(self, max_frames: int):
        self.frames: deque = deque(maxlen=int(max_frames))  # (frame number, hand, aspect, label read)
        self.number = 0  # frames seen in this word
        self.commits: list[tuple[int, str]] = []  # (frame number, letter) of the word's letters
        self.deleted = False  # a `del` was signed in this word

    def clear(self) -> None:
        self.frames.clear()
        self.number, self.commits, self.deleted = 0, [], False

    def frame(self, hand, aspect: float, label: str) -> None:
        self.number += 1
        if hand is not None:
            self.frames.append((self.number, hand, aspect, label))

    def event(self, event: dict) -> None:
        """Follow the speller's events: a letter committed at the latest frame, a delete taking the last back, a
        cleared text starting the word afresh."""
        if event["type"] == "clear":
            self.clear()
        elif event["type"] == "letter":
            self.commits.append((self.number, event["value"]))
        elif event["type"] == "del":
            self.deleted = True
            if self.commits:
                self.commits.pop()

    def label(self, meant: str, raw: str, gathered, source: str, signs: bool = True) -> int:
        """The word, committed as `raw`, was meant as `meant`: its frames join `gathered` (app.live.learning's
        Gathered) labelled with the letters meant, and with `signs` the `del` and `space` frames as those signs;
        how many frames were kept. None are when the commits followed are not `raw` (the word was taken up again
        after a delete of its space, say): which frame was which letter is not known then."""
        if "".join(letter for _, letter in self.commits) != raw:
            return 0
        pairs = align(meant, raw)
        letters = {r: meant[t] for t, r in pairs if t is not None and r is not None}
        at = [number for number, _ in self.commits]
        takes: dict[int | str, list] = {}
        for number, hand, aspect, label in self.frames:
            if label in (DELETE, SPACE):
                if signs and ((label == DELETE and self.deleted) or (label == SPACE and (not at or number > at[-1]))):
                    takes.setdefault(label, []).append((hand, aspect))
                continue
            # the nearest commit of the letter read, between the commits around it
            near = [k for k, (n, letter) in enumerate(self.commits) if letter == label
                    and (k == 0 or at[k - 1] < number) and (k + 1 == len(at) or number < at[k + 1])]
            if near:
                takes.setdefault(min(near, key=lambda k: abs(at[k] - number)), []).append((hand, aspect))
        kept = 0
        for which, frames in takes.items():
            label = which if isinstance(which, str) else letters.get(which)  # None: an extra letter, left out
            if label is None:
                continue
            take = gathered.new_take(label, source)
            for hand, aspect in frames:
                kept += gathered.add(label, take, hand.landmarks, aspect, hand.is_left, source=source)
        return kept
