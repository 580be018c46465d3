"""What a live session's decoder learns from the words its user finishes, chooses and reopens: crafted predictions
through the real Session and speller (the path `process` takes after the model; no camera, no model)."""
from __future__ import annotations

import pytest

from app.live.decoder import LETTERS
from app.live.frames import FrameError
from app.live.session import MAX_KEPT_WORDS, Session, TrackerPool


@pytest.fixture
def session(config) -> Session:
    return Session(config, TrackerPool(config["landmarks"]))


def frame(session: Session, label: str | None, probs=None) -> list[dict]:
    confidence = 1.0 if probs is None else max(probs)
    return session.decode_words(session.speller.update(label, confidence, probs))


def sign(session: Session, word: str, doubts: dict[int, tuple[str, float]] | None = None) -> list[dict]:
    """Each letter of `word` held, then a rest; at position i the model was unsure: doubts[i] = (letter meant,
    its probability)."""
    events = []
    for i, c in enumerate(word):
        probs = [0.0] * 26
        probs[LETTERS.index(c)] = 0.95
        if doubts and i in doubts:
            other, p = doubts[i]
            probs[LETTERS.index(c)], probs[LETTERS.index(other)] = 0.95 - p, p
        for _ in range(session.speller.hold_frames):
            events += frame(session, c, probs)
        events += frame(session, None)
    return events


def end_word(session: Session, label: str = "space") -> list[dict]:
    events = []
    for _ in range(session.speller.hold_frames):
        events += frame(session, label)
    return events + frame(session, None)


def test_a_session_learns_its_users_misreadings_from_the_words_it_decodes(config, session):
    # This user's T is read as S, with the model's doubt on it: the decoder fixes each word, and learns.
    for word, meant in (("SHIS", "THIS"), ("SHAS", "THAT")):
        sign(session, word, {0: ("T", 0.35), 3: ("T", 0.35)})
        assert [(e["value"], e["raw"]) for e in end_word(session) if e["type"] == "word"] == [(meant, word)]
    assert session.decoder.misread[("T", "S")] == 3  # THIS once, THAT twice
    # Now sure S's where T's were meant, with no doubt to go on, are read as this user's T's; a session that
    # learned nothing keeps the spelling.
    fresh = Session(config, TrackerPool(config["landmarks"]))
    for s, expected in ((fresh, "BESSER"), (session, "BETTER")):
        sign(s, "BESSER")
        assert [e["value"] for e in end_word(s) if e["type"] == "word"] == [expected]


def test_a_choice_and_a_reopened_word_take_the_lesson_back(session):
    sign(session, "HELQ", {3: ("P", 0.3)})
    assert [(e["value"], e["raw"]) for e in end_word(session) if e["type"] == "word"] == [("HELP", "HELQ")]
    assert (session.decoder.misread[("P", "Q")], session.decoder.meant["P"]) == (1, 1)

    session.choose({"raw": True})  # the user meant HELQ: nothing was misread
    assert session.speller.text == "HELQ "
    assert (session.decoder.misread[("P", "Q")], session.decoder.meant.get("P"), session.decoder.meant["Q"]) == \
        (0, 0, 1)

    end_word(session, "del")  # the space deleted: HELQ is the current word again, and teaches nothing meanwhile
    assert session.speller.text == "HELQ" and set(session.decoder.meant.values()) == {0}
    end_word(session)  # finished again, it teaches once
    assert session.speller.text == "HELQ " and session.decoder.meant["Q"] == 1
    assert session.decoder.misread[("P", "Q")] == 0


def test_a_new_model_relearns_the_misreadings_and_forget_me_forgets_the_words(session):
    sign(session, "HELQ", {3: ("P", 0.3)})
    end_word(session)
    session.decoder.remember("BJORN")  # a spelling the user kept
    assert session.decoder.misread[("P", "Q")] == 1
    personal = object()  # stands for a PersonalModel: use_personal only keeps it until a frame comes
    session.use_personal("key", personal)  # calibrated: the shared model's misreadings no longer hold
    assert session.decoder.misread == {} and session.decoder.meant == {}
    assert "BJORN" in session.decoder.user_words
    session.choose({"raw": True})  # a lesson taken back after the counts were cleared leaves them at zero
    assert min(session.decoder.meant.values()) == 0 and session.decoder.meant["Q"] == 1
    session.use_personal("key", personal)  # the same model again: nothing to relearn
    assert session.decoder.meant["Q"] == 1
    session.forget_words()
    assert session.decoder.user_words == {} and session.decoder.meant == {}


def test_a_word_signed_on_past_any_words_length_is_finished_and_kept_as_spelled(session):
    from app.live.speller import MAX_WORD
    spelled = ("ABC" * MAX_WORD)[:MAX_WORD + 1]  # one letter past MAX_WORD
    words = [e for e in sign(session, spelled) if e["type"] == "word"]
    assert [(e["value"], e["raw"]) for e in words] == [(spelled[:-1], spelled[:-1])]
    assert session.speller.text == spelled[:-1] + " " + spelled[-1]


def test_spellings_kept_on_an_earlier_visit_are_ranked_up_and_a_bad_list_is_refused_whole(config, session):
    session.restore_words(["BJORN", "HELQ"])
    assert list(session.decoder.user_words) == ["BJORN", "HELQ"]
    sign(session, "HELQ", {3: ("P", 0.3)})  # a new user's HELQ becomes HELP (the test above)
    assert [(e["value"], e["raw"]) for e in end_word(session) if e["type"] == "word"] == [("HELQ", "HELQ")]

    fresh = Session(config, TrackerPool(config["landmarks"]))
    for bad in (None, "HELQ", ["helq"], ["HÉLQ"], ["HEL Q"], ["A" * 41], [""], [1], ["A"] * (MAX_KEPT_WORDS + 1)):
        with pytest.raises(FrameError) as err:
            fresh.restore_words(["BJORN"] + bad if isinstance(bad, list) else bad)
        assert err.value.code == "bad_words"
    assert fresh.decoder.user_words == {}
    fresh.restore_words(["A" * 40] + ["B"] * (MAX_KEPT_WORDS - 1))  # at the bounds
    assert len(fresh.decoder.user_words) == 2


def test_misreadings_learned_on_an_earlier_visit_are_taken_up_for_the_same_model_only(config, session):
    for word in ("SHIS", "SHAS"):  # this user's T read as S (the first test)
        sign(session, word, {0: ("T", 0.35), 3: ("T", 0.35)})
        end_word(session)
    learned = session.misreadings("shipped")
    assert learned["model"] == "shipped" and learned["misread"] == {"TS": 3}

    def returning(model: str, learned: dict) -> str:
        s = Session(config, TrackerPool(config["landmarks"]))
        s.restore_misreadings(learned, model)
        sign(s, "BESSER")
        return [e["value"] for e in end_word(s) if e["type"] == "word"][0]

    assert returning("shipped", learned) == "BETTER"  # as the first visit's decoder reads it by now
    assert returning("another-model", learned) == "BESSER"  # another model's misreadings are not this one's
    for bad in (None, {**learned, "model": 7}, {"meant": learned["meant"], "misread": {}},
                {**learned, "misread": {"TS": 99}}):
        with pytest.raises(FrameError) as err:
            Session(config, TrackerPool(config["landmarks"])).restore_misreadings(bad, "shipped")
        assert err.value.code == "bad_misreadings"
    assert Session(config, TrackerPool(config["landmarks"])).misreadings("shipped") is None  # nothing learned yet


def test_forget_me_forgets_what_an_earlier_visit_brought(session):
    session.restore_words(["BJORN"])
    session.restore_misreadings({"model": "shipped", "meant": {"T": 3}, "misread": {"TS": 3}}, "shipped")
    session.forget_words()
    assert session.decoder.user_words == {} and session.decoder.misreadings() == {"meant": {}, "misread": {}}
