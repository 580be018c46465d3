"""The speller's rules, frame by frame (pure: no server, no model)."""
from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from app.live.speller import MAX_TEXT, MAX_WORD, Speller

HOLD = 3


def feed(speller: Speller, labels: list[str | None], confidence: float = 0.9) -> list[dict]:
    events = []
    for label in labels:
        events += speller.update(label, confidence)
    return events


def sign(letter: str) -> list[str]:
    """One letter held just long enough to commit."""
    return [letter] * HOLD


REST = ["nothing"]


def test_a_letter_commits_once_after_hold_frames():
    s = Speller(hold_frames=HOLD)
    assert feed(s, ["A"] * (HOLD - 1)) == []
    assert s.update("A", 0.9) == [{"type": "letter", "value": "A"}]
    assert feed(s, ["A"] * 20) == []  # holding on does not repeat it
    assert s.text == "A" and s.word == "A"


def test_double_letter_needs_a_rest():
    s = Speller(hold_frames=HOLD)
    feed(s, sign("L") + sign("L"))
    assert s.text == "L"
    feed(s, REST + sign("L"))
    assert s.text == "LL"


def test_no_hand_rearms_like_nothing():
    s = Speller(hold_frames=HOLD)
    feed(s, sign("O") + [None] + sign("O"))
    assert s.text == "OO"


def test_rest_frames_must_all_pass_before_rearming():
    s = Speller(hold_frames=HOLD, rest_frames=3)
    feed(s, sign("E") + REST * 2 + sign("E"))
    assert s.text == "E"
    feed(s, REST * 3 + sign("E"))
    assert s.text == "EE"


def test_different_letters_need_no_rest():
    s = Speller(hold_frames=HOLD)
    feed(s, sign("C") + sign("A") + sign("B") + sign("A"))
    assert s.text == "CABA"


def test_low_confidence_breaks_the_hold_but_does_not_rearm():
    s = Speller(hold_frames=HOLD, min_confidence=0.6)
    s.update("A", 0.9)
    s.update("A", 0.9)
    s.update("A", 0.3)  # the hold starts again
    assert feed(s, ["A"] * (HOLD - 1)) == []
    feed(s, ["A"])
    assert s.text == "A"
    s.update("A", 0.1)  # a wobble between shapes is not a rest
    feed(s, sign("A"))
    assert s.text == "A"


def test_a_flicker_resets_the_hold():
    s = Speller(hold_frames=HOLD)
    feed(s, ["M", "M", "N", "M", "M"])
    assert s.text == ""
    feed(s, ["M"])
    assert s.text == "M"


def test_space_finishes_the_word():
    s = Speller(hold_frames=HOLD)
    events = feed(s, sign("H") + sign("I") + sign("space"))
    assert {"type": "space"} in events and {"type": "word", "value": "HI"} in events
    assert s.text == "HI " and s.word == ""
    feed(s, sign("Y") + sign("O") + sign("space"))
    assert s.text == "HI YO "


def test_a_word_as_long_as_no_word_is_finished_as_if_space_were_signed():
    s = Speller(hold_frames=HOLD)
    events = feed(s, [x for i in range(MAX_WORD + 1) for x in sign("AB"[i % 2])])
    word = "AB" * (MAX_WORD // 2)
    assert events[-3:] == [{"type": "space"}, {"type": "word", "value": word}, {"type": "letter", "value": "A"}]
    assert s.word == "A" and len(s.finished) == MAX_WORD


def test_the_transcript_keeps_its_latest_words_whole():
    s = Speller(hold_frames=HOLD)
    spelled = []
    for i in range(MAX_TEXT // 2):  # words of 1-3 letters, each with its space: past MAX_TEXT characters
        word = "ABL"[:1 + i % 3] if i % 2 else "LBA"[:1 + i % 3]
        feed(s, [x for c in word for x in sign(c)] + sign("space"))
        spelled.append(word)
    kept = s.text.split()
    assert len(s.text) <= MAX_TEXT < len(" ".join(spelled)) and s.text == " ".join(spelled[-len(kept):]) + " "


def test_space_twice_adds_one_space_and_one_word():
    s = Speller(hold_frames=HOLD)
    feed(s, sign("A") + sign("space"))
    assert feed(s, REST + sign("space")) == []
    assert s.text == "A "


def test_space_at_start_does_nothing():
    s = Speller(hold_frames=HOLD)
    assert feed(s, sign("space")) == []
    assert s.text == ""


def test_del_at_start_does_nothing():
    s = Speller(hold_frames=HOLD)
    assert feed(s, sign("del")) == []
    assert s.undo() == []
    assert s.text == ""


def test_del_deletes_the_last_letter():
    s = Speller(hold_frames=HOLD)
    events = feed(s, sign("C") + sign("A") + sign("T") + sign("del"))
    assert events[-1] == {"type": "del"}
    assert s.text == "CA"
    feed(s, sign("B"))
    assert s.text == "CAB"


def test_del_twice_needs_a_rest_like_any_label():
    s = Speller(hold_frames=HOLD)
    feed(s, sign("A") + sign("B") + sign("del") + sign("del"))
    assert s.text == "A"
    feed(s, REST + sign("del"))
    assert s.text == ""


def test_del_after_space_reopens_the_last_word():
    s = Speller(hold_frames=HOLD)
    feed(s, sign("C") + sign("A") + sign("space") + sign("del"))
    assert s.text == "CA" and s.word == "CA"
    events = feed(s, sign("B") + sign("space"))
    assert {"type": "word", "value": "CAB"} in events


def test_undo_and_reset():
    s = Speller(hold_frames=HOLD)
    feed(s, sign("N") + sign("O") + sign("space") + sign("G"))
    assert s.undo() == [{"type": "del"}]
    assert s.text == "NO "
    assert s.reset() == [{"type": "clear"}]
    assert s.text == "" and s.word == ""
    assert s.reset() == []


def test_reset_drops_a_half_held_letter():
    s = Speller(hold_frames=HOLD)
    feed(s, ["K"] * (HOLD - 1))
    s.reset()
    assert s.update("K", 0.9) == []


def test_invalid_settings_are_refused():
    import pytest

    with pytest.raises(ValueError):
        Speller(hold_frames=0)
    with pytest.raises(ValueError):
        Speller(rest_frames=0)
    with pytest.raises(ValueError):
        Speller(unsure_frames=0)


LABELS = st.sampled_from(["A", "B", "L", "del", "space", "nothing", None])


@given(st.lists(st.tuples(LABELS, st.floats(0, 1)), max_size=200))
def test_the_text_is_always_what_the_events_say(frames):
    """Replaying the events rebuilds the text exactly (short of MAX_TEXT, where the oldest words go); the text never
    has a leading or double space."""
    s = Speller(hold_frames=2)
    rebuilt = ""
    for label, confidence in frames:
        for event in s.update(label, confidence):
            if event["type"] == "letter":
                rebuilt += event["value"]
            elif event["type"] == "space":
                rebuilt += " "
            elif event["type"] == "del":
                rebuilt = rebuilt[:-1]
    assert rebuilt == s.text
    assert not s.text.startswith(" ") and "  " not in s.text


# The still-hand rule: each frame's hand (a feature vector: 63 shape values, wrist x y z, palm size).
def hand(shape: float, wrist_x: float = 0.5) -> list[float]:
    """A hand whose every shape value is `shape`, its wrist at `wrist_x`, palm size 0.1."""
    return [shape] * 63 + [wrist_x, 0.5, 0.0, 0.1]


def probs_of(letter: str, p: float, second: str | None = None) -> list[float]:
    from app.live.decoder import LETTERS

    out = [0.0] * 26
    out[LETTERS.index(letter)] = p
    if second:
        out[LETTERS.index(second)] = (1 - p) / 2
    return out


def held(s: Speller, letter: str, p: float, frames: int, shape: float, second: str | None = None) -> list[dict]:
    events = []
    for i in range(frames):
        jitter = 0.01 * (i % 2)  # a held hand shakes a little
        events += s.update(letter, p, probs_of(letter, p, second), hand(shape + jitter))
    return events


def test_a_still_hand_read_unsure_commits_its_letter_flagged_when_it_moves_on():
    s = Speller(hold_frames=4, min_confidence=0.6)
    assert held(s, "M", 0.45, 6, shape=0.0, second="N") == []  # below the confidence: the confident rule waits
    events = s.update("A", 0.3, probs_of("A", 0.3), hand(0.5))  # the hand moves on
    assert events == [{"type": "letter", "value": "M", "unsure": True, "second": "N"}]
    [m] = s.letters
    assert m.unsure and m.probs[12] == pytest.approx(0.45) and m.probs[13] == pytest.approx(0.275)  # its hold's
    # Without the hand (points=None) the speller reads as it always did: nothing of an unsure hold.
    old = Speller(hold_frames=4, min_confidence=0.6)
    for _ in range(6):
        old.update("M", 0.45, probs_of("M", 0.45, "N"))
    assert old.update("A", 0.3, probs_of("A", 0.3)) == [] and old.text == ""


def test_a_still_hand_commits_when_it_rests_and_when_the_word_ends():
    s = Speller(hold_frames=4, min_confidence=0.6)
    held(s, "T", 0.5, 4, shape=0.0, second="S")
    assert s.update(None, 1.0) == [{"type": "letter", "value": "T", "unsure": True, "second": "S"}]
    held(s, "O", 0.5, 4, shape=0.3, second="C")
    assert [e["type"] for e in s.finish_word()] == ["letter", "space", "word"] and s.text == "TO "


def test_a_short_unsure_pause_writes_nothing_but_a_held_unsure_letter_and_a_short_sure_one_commit():
    s = Speller(hold_frames=4, min_confidence=0.6, still_frames=3, unsure_frames=4)
    # A hand rising into view pauses 3 frames on a shape the model reads unsure (P at 0.4), then moves on.
    held(s, "P", 0.4, 3, shape=0.0, second="K")
    held(s, "B", 0.45, 4, shape=0.6, second="W")  # the letter signed, read unsure, held 4 frames
    assert s.update(None, 1.0) == [{"type": "letter", "value": "B", "unsure": True, "second": "W"}]
    assert s.text == "B"
    # A sure letter needs no more than still_frames: 3 still frames at 0.7, 0.5, 0.8 (never 4 in a row at 0.6).
    for p in (0.7, 0.5, 0.8):
        s.update("O", p, probs_of("O", p), hand(0.3))
    assert s.update(None, 1.0) == [{"type": "letter", "value": "O"}] and s.text == "BO"


def test_a_hand_held_still_for_minutes_keeps_bounded_state_and_still_commits_once():
    from app.live.speller import GAP_KEEP

    s = Speller(hold_frames=4, min_confidence=0.6)
    held(s, "T", 0.5, 10 * GAP_KEEP, shape=0.0, second="S")
    assert len(s._still) == GAP_KEEP  # a visitor's camera left on a still hand holds no more than this
    assert s.update(None, 1.0) == [{"type": "letter", "value": "T", "unsure": True, "second": "S"}]
    assert s.text == "T" and len(s._still) == 0


def test_a_moving_hand_commits_nothing_even_read_confidently():
    s = Speller(hold_frames=4, min_confidence=0.6)
    held(s, "A", 0.9, 5, shape=0.0)
    # Passing through a shape the model reads confidently as R, the hand never still: nothing between A and B.
    assert [e for i in range(6) for e in s.update("R", 0.95, probs_of("R", 0.95), hand(0.1 + 0.1 * i))] == []
    held(s, "B", 0.9, 5, shape=0.8)
    assert s.text == "AB"
    # The same frames without the hand: the confident rule alone commits the R the hand passed through.
    old = Speller(hold_frames=4, min_confidence=0.6)
    for label, n in (("A", 5), ("R", 6), ("B", 5)):
        for _ in range(n):
            old.update(label, 0.95)
    assert old.text == "ARB"


def test_a_letter_held_five_frames_after_a_rest_commits_once_and_a_double_needs_its_rest():
    s = Speller(hold_frames=4, min_confidence=0.6)
    s.update(None, 1.0)
    # Five frames, the model sure only of the last two (its window still filling): committed when the hand moves.
    for i, p in enumerate((0.3, 0.4, 0.5, 0.7, 0.8)):
        s.update("L", p, probs_of("L", p), hand(0.0))
    held(s, "L", 0.9, 4, shape=0.6)  # the same letter again, no rest between: not a double
    assert s.text == "L"
    s.update(None, 1.0)
    held(s, "L", 0.5, 5, shape=0.6)
    s.update(None, 1.0)
    assert s.text == "LL" and s.letters[1].repeat


@given(st.lists(st.tuples(LABELS, st.floats(0, 1), st.sampled_from([0.0, 0.05, 0.5, 1.0])), max_size=200))
def test_the_text_is_always_what_the_events_say_with_the_hand_given(frames):
    """The same with each frame's hand (still, shaking or moving): the still-hand rule's letters are events too."""
    s = Speller(hold_frames=2, still_frames=2)
    rebuilt = ""
    for label, confidence, shape in frames:
        probs = probs_of(label, confidence) if label in ("A", "B", "L") else [confidence / 26] * 26
        for event in s.update(label, confidence, probs, hand(shape)):
            rebuilt = rebuilt[:-1] if event["type"] == "del" else rebuilt + {"letter": event.get("value"),
                                                                             "space": " "}.get(event["type"], "")
    assert rebuilt == s.text
    assert not s.text.startswith(" ") and "  " not in s.text
