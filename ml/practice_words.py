"""The practice list (issue 22): the words the live page asks a learner to spell, in order, and what
`python -m ml.experiments practice` spells for an unseen signer, so the figures measure the page's own list.

The opening (its first OPENING words) is "the quick brown fox jumps over the lazy dog" rearranged into short words:
every letter A-Z and 8 spaces in 35 letters, about two minutes at 2.5 s a sign. Then short common words, longer ones
and names; after the opening the page prefers, among the next few words, one with the letters this user gets wrong.
Every DEL_EVERY-th word is a `del` drill: spell the word, take its last letter back with `del`, sign it again.
"""
from __future__ import annotations

PRACTICE_WORDS = (
    # the opening
    "THE", "HAT", "FOX", "JUMPS", "QUICK", "BROWN", "LAZY", "DIVING",
    # short common words
    "AND", "YOU", "CAN", "NOT", "WHO", "YES", "BIG", "RED", "SUN", "CUP", "MAP", "KEY", "ZOO", "JOB", "WAX", "GYM",
    # longer ones
    "HELLO", "THANKS", "PLEASE", "FRIEND", "SCHOOL", "WATER", "FAMILY", "QUIET", "PIZZA", "JACKET", "OXYGEN",
    "KNOWLEDGE", "BEAUTIFUL", "SANDWICH",
    # names (the decoder must keep them as spelled)
    "ANNA", "JAMES", "MARIA", "KEVIN", "SOPHIA", "OLIVIA", "XAVIER", "ZOE", "QUINN", "YUSUF", "BEATRIX", "WOJCIECH",
)
OPENING = 8  # the page asks these in order; all 26 letters are in them
DEL_EVERY = 5  # every 5th word: its last letter taken back with `del` and signed again
