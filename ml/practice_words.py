"""The graded practice list (issue 22): the words the page asks a learner to spell, in order.

Short common words first, then longer ones, then names. Every letter of A-Z comes up within the first
17 words (about 55 letters: well inside the first two minutes at a learner's pace), and the hard ones (J, Q,
X, Z, V) more than once within the first 40. Double letters (a rest between them) wait for the later words.
`space` ends each word when it is signed; `del` is asked every DEL_EVERY words (erase the word's last letter and
sign it again), so both come up early too. `python -m ml.experiments practice` measures what these words teach a
personal model (docs/EXPERIMENTS.md, "Practice words"); the page asks for them in this order.
"""
from __future__ import annotations

PRACTICE_WORDS = (
    # short and common: all 26 letters by TOP
    "CAB", "DOG", "SUN", "FIX", "JAM", "ZIP", "WEB", "KEY", "VAN", "QUIZ", "HELP", "BOX", "GYM", "LAKE", "YES",
    "RUN", "TOP", "HAND", "WORD", "JUMP", "BLUE", "FROG", "MILK", "CITY", "PLAY",
    # longer
    "WATER", "HOUSE", "QUICK", "ZEBRA", "VOICE", "PLANT", "NIGHT", "EXTRA", "JUICE", "MOVIE", "LIGHT", "GHOST",
    "SWIFT", "FRIEND", "KNIGHT", "PUZZLE", "YELLOW", "OXYGEN", "SCHOOL", "JACKET", "WINDOW",
    # names (the decoder must keep them as spelled)
    "MARIA", "JOHN", "DAVID", "KEIRA", "OSCAR", "LUCY", "PIERRE", "XAVIER", "ZOE", "HUGO", "BEA", "VIKTOR",
    "JUNE", "QUINN",
)
DEL_EVERY = 5  # every 5th word: erase its last letter with `del`, then sign that letter again
