"""The word decoder on crafted posteriors, and the speller's evidence it decodes (pure: no server, no model)."""
from __future__ import annotations

import pytest

from app.live.decoder import LETTERS, Decoder, Letter, shared_lexicon
from app.live.speller import Speller


@pytest.fixture(scope="module")
def decoder() -> Decoder:
    return Decoder(shared_lexicon())


def read(word: str, sure: float = 0.9, doubts: dict[int, tuple[str, float]] | None = None) -> list[Letter]:
    """Letters as the model read them: `sure` on each letter of `word`, or at position i the model also gave
    doubts[i] = (letter, probability)."""
    letters = []
    for i, c in enumerate(word):
        probs = [(1 - sure) / 25] * 26
        probs[LETTERS.index(c)] = sure
        if doubts and i in doubts:
            other, p = doubts[i]
            probs = [0.0] * 26
            probs[LETTERS.index(c)], probs[LETTERS.index(other)] = 1 - p, p
        letters.append(Letter(c, probs))
    return letters


def test_a_confusable_letter_is_fixed(decoder):
    # W read where E was signed, the model's second guess E close behind.
    result = decoder.decode(read("HWLLO", doubts={1: ("E", 0.4)}))
    assert (result.value, result.raw) == ("HELLO", "HWLLO")


def test_a_confident_misreading_of_a_common_word_is_fixed_when_the_raw_is_no_word(decoder):
    assert decoder.decode(read("THR", doubts={2: ("E", 0.3)})).value == "THE"


def test_a_name_spelled_clearly_is_kept(decoder):
    # BJORN is not in the lexicon and one letter from BORN: spelled clearly, it stays as spelled.
    assert "BJORN" not in decoder.lexicon.logprior
    result = decoder.decode(read("BJORN"))
    assert (result.value, result.raw) == ("BJORN", "BJORN")
    assert "BORN" in result.alternatives


def test_a_word_spelled_right_stays(decoder):
    for word in ("HELLO", "PARIS", "FLY", "FULL"):
        assert decoder.decode(read(word)).value == word


def test_a_double_letter_the_user_did_not_rest_for(decoder):
    # COFEE: the speller merged the double F (no rest between them).
    assert decoder.decode(read("COFEE")).value == "COFFEE"


def test_an_extra_repeated_letter_is_dropped(decoder):
    letters = read("THEE")
    letters[3] = Letter("E", letters[3].probs, repeat=True)
    letters[2] = Letter("E", letters[2].probs, weak=True)
    assert decoder.decode(letters).value == "THE"


def test_an_empty_word(decoder):
    result = decoder.decode([])
    assert (result.value, result.raw, result.alternatives) == ("", "", [])
    assert decoder.suggest([]) == []


def test_letters_without_probabilities_decode_as_sure(decoder):
    assert decoder.decode([Letter(c) for c in "HELLO"]).value == "HELLO"


def test_a_kept_spelling_ranks_up_for_that_user():
    mine, other = Decoder(shared_lexicon()), Decoder(shared_lexicon())
    letters = read("ILSE", sure=0.6, doubts={0: ("E", 0.45)})
    assert other.decode(letters).value == "ELSE"
    mine.remember("ILSE")
    assert mine.decode(letters).value == "ILSE"
    assert other.decode(letters).value == "ELSE"  # only for the user who kept it
    assert "ILSE" in mine.suggest(read("ILS"))


def test_kept_spellings_are_bounded():
    d = Decoder(shared_lexicon())
    for i in range(3000):
        d.remember(f"W{i}")
    assert len(d.user_words) == 1000 and "W2999" in d.user_words and "W0" not in d.user_words


def test_a_corrected_letter_is_trusted_more(decoder):
    letters = read("ILSE", sure=0.6, doubts={0: ("E", 0.45)})
    assert decoder.decode(letters).value == "ELSE"
    letters[0] = Letter("I", letters[0].probs, corrected=True)  # signed again after a delete
    assert decoder.decode(letters).value == "ILSE"


def test_suggestions_complete_the_growing_word(decoder):
    suggestions = decoder.suggest(read("HEL"))
    assert 1 <= len(suggestions) <= 3 and all(w.startswith("HEL") for w in suggestions)
    # The model's second guess counts: HWL with E close behind suggests HEL... words.
    assert any(w.startswith("HEL") for w in decoder.suggest(read("HWL", doubts={1: ("E", 0.45)})))


def test_the_speller_keeps_each_letters_evidence():
    s = Speller(hold_frames=3, min_confidence=0.6)
    probs = [0.0] * 26
    probs[LETTERS.index("A")] = 1.0
    for _ in range(3):
        s.update("A", 0.95, probs)
    for _ in range(3):
        s.update("B", 0.65)  # barely over the threshold, no probabilities
    s.update("nothing", 1.0)
    for _ in range(3):
        s.update("B", 0.9)
    assert [(x.label, x.weak, x.repeat) for x in s.letters] == [("A", False, False), ("B", True, False),
                                                                 ("B", False, True)]
    assert s.letters[0].probs == probs and s.letters[1].probs is None
    s.undo()
    for _ in range(3):
        s.update("C", 0.9)
    assert [x.label for x in s.letters] == ["A", "B", "C"] and s.letters[2].corrected
    assert s.finish_word() == [{"type": "space"}, {"type": "word", "value": "ABC"}]
    assert [x.label for x in s.finished] == list("ABC") and s.letters == []
    s.replace_finished("ABD")
    assert s.text == "ABD "
    s.undo()  # the space: the word is the current one again, its evidence rebuilt from the text
    assert s.word == "ABD" and [x.label for x in s.letters] == list("ABD")
