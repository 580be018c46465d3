"""ml.practice: the practice-word protocol of `python -m ml.experiments practice`, and the sample recipe it
measures (Samples.latest, adapt's class balance)."""
from __future__ import annotations

import numpy as np

from ml.calibration import Fold, calibration_parts
from ml.landmark_set import LandmarkSet
from ml.personal import Samples
from ml.practice import FIRST_PRACTICE_TAKE, practice_signs, practice_takes
from ml.practice_words import DEL_EVERY, PRACTICE_WORDS


def test_the_graded_list_shows_every_letter_early_and_asks_for_space_and_del():
    seen, first_all = set(), None
    for i, word in enumerate(PRACTICE_WORDS):
        assert word.isalpha() and word.isupper() and len(word) <= 40
        seen |= set(word)
        if first_all is None and len(seen) == 26:
            first_all = i + 1
    assert first_all is not None and first_all <= 20
    signs = practice_signs(["CAB"] * DEL_EVERY)
    assert signs[0] == ["C", "A", "B", "space"] and signs[DEL_EVERY - 1] == ["C", "A", "B", "del", "B", "space"]


def test_practice_takes_come_from_the_calibration_part_never_its_calibration_frames():
    """A video signer: each letter a run of 8-14 consecutive frames of its own take, never a frame calibration
    used or one of the test part; a sign the signer lacks (here `del`) is skipped, not mislabelled."""
    rng = np.random.default_rng(0)
    classes = ["C", "A", "B", "space"]
    n = 200
    y = np.repeat(classes, n)
    person = LandmarkSet(rng.uniform(0, 1, (len(y), 21, 3)), y, ["s"] * len(y), [f"f{i}" for i in range(len(y))],
                         ["Left"] * len(y), np.ones(len(y)))
    pool, test = calibration_parts(person, "asl_ai")
    fold = Fold("asl_ai", None, {"window": 8}, None, person, pool, None, None, None)
    calibrated = np.concatenate([idx[40:60] for idx in pool.values()])
    words = ["CAB"] * DEL_EVERY
    samples, word_of = practice_takes(fold, calibrated, words)
    # Each frame is found back by its landmarks: which person frame it was.
    index = {person.X[i].tobytes(): i for i in range(len(person))}
    used = np.array([index[x.tobytes()] for x in samples.landmarks])
    assert not np.isin(used, calibrated).any() and not test[used].any()
    assert (person.y[used] == samples.labels).all()
    takes = list(dict.fromkeys(samples.takes))
    # C A B space per word, and the last word its B again after the del the signer lacks
    assert len(takes) == DEL_EVERY * 4 + 1 and min(takes) > FIRST_PRACTICE_TAKE
    for take in takes:
        run = used[samples.takes == take]
        assert 8 <= len(run) < 15
    assert list(samples.labels[samples.takes == takes[3]][:1]) == ["space"] and set(word_of) == set(range(DEL_EVERY))


def test_latest_keeps_each_class_newest_frames():
    labels = np.array(["A", "B", "A", "A", "B"])
    samples = Samples(np.zeros((5, 21, 3)), np.ones(5), np.zeros(5, bool), labels, np.arange(5))
    kept = samples.latest(2)
    assert list(kept.takes) == [1, 2, 3, 4]
    both = Samples.concat([samples, kept])
    assert len(both) == 9 and list(both.takes[-4:]) == [1, 2, 3, 4]
