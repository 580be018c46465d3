"""Free spelling teaches, end to end: a real server, real python-socketio clients, real Kaggle photos, one real
(shortened) adaptation.

The protocol (app.live.confirmed, app.live.learning): a word the user confirms (a `choose` at once; a decoded word
when the next one ends, unless undone meanwhile) gives its letters' frames to the user's samples (source "words");
past `learning.adapt_after_words` confirmed words the server adapts by itself (`adapted` with "source": "words");
`learn_words` {"on": false} stops it; `forget` drops what it gathered.
One server serves every test here; the learner's session (with its adaptation) is shared by the first three.
"""
from __future__ import annotations

import pytest

from tests.conftest import SHIPPED_CHECKPOINT, Server
from tests.test_calibration import ADAPT_TIMEOUT, FAST, Client, entries, photos
from tests.test_practice import spell, stored_samples

UNDONE = "KI"  # spelled, ended, undone: teaches nothing
DECODED = "OLD"  # ended with Space: confirmed when the next word ends
CHOSEN = "AVE"  # ended with "keep it" (choose raw): confirmed at once, and the second confirmed word: adapts
LATER = "FY"  # confirmed while that adaptation runs: waits for the next


@pytest.fixture(scope="module")
def words_server(tmp_path_factory):
    if not SHIPPED_CHECKPOINT.exists():
        pytest.fail(f"{SHIPPED_CHECKPOINT} is missing: the shipped model is part of the repository")
    server = Server(tmp_path_factory.mktemp("learning-words") / "instance",
                    {**FAST, "SIGN2SOUND_LEARNING_ADAPT_AFTER_WORDS": "2"}).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def rest() -> bytes:
    return photos("nothing", 0, 1)[0]


def sign(client: Client, word: str, rest: bytes) -> None:
    """Each letter a Kaggle photo (one the shipped model reads right) held still, a rest after it; not ended."""
    results = spell(client, [photos(letter, 0, 1)[0] for letter in word], rest)
    assert "".join(e["value"] for r in results for e in r["events"] if e["type"] == "letter") == word


def words_of(events: list[dict]) -> list[dict]:
    return [e for e in events if e["type"] in ("word", "replace")]


@pytest.fixture(scope="module")
def learner(words_server, rest):
    """A user who spells freely: UNDONE (undone), DECODED, CHOSEN, LATER; the server adapts on the two confirmed
    before LATER."""
    client = Client(words_server.url)
    sign(client, UNDONE, rest)
    assert words_of(client.call("space")["events"])
    undo = client.call("undo")["events"]  # the decoder's change taken back, or (kept as spelled) the space deleted
    if not words_of(undo):  # the word is being spelled again: ended again, it has no frames of its own to teach
        assert [e["type"] for e in undo] == ["del"], undo
        assert words_of(client.call("space")["events"])
    sign(client, DECODED, rest)
    [decoded] = words_of(client.call("space")["events"])
    sign(client, CHOSEN, rest)
    [chosen] = words_of(client.call("choose", {"raw": True})["events"])
    sign(client, LATER, rest)  # while the adaptation runs (its subprocess takes seconds to start)
    client.call("choose", {"raw": True})  # gathered, left for the next adaptation
    adapted = client.next("adapted", timeout=ADAPT_TIMEOUT)
    yield {"client": client, "decoded": decoded, "chosen": chosen, "adapted": adapted}
    client.close()


def test_confirmed_words_teach_and_the_server_adapts_on_them_by_itself(learner, words_server):
    adapted = learner["adapted"]
    assert adapted["source"] == "words" and len(adapted["key"]) == 32, adapted
    assert learner["chosen"]["value"] == CHOSEN
    meant = set(learner["decoded"]["value"]) | set(CHOSEN)  # each letter labelled as the confirmed word has it
    samples = stored_samples(words_server)
    assert set(samples.labels) == meant & set(DECODED + CHOSEN), (set(samples.labels), learner["decoded"])
    assert set(adapted["classes"]) == set(samples.labels)


def test_an_undone_word_teaches_nothing(learner, words_server):
    labels = set(stored_samples(words_server).labels)
    assert not labels & set(UNDONE), labels


def test_forget_drops_what_free_spelling_gathered(learner, words_server):
    client = learner["client"]
    assert not set(stored_samples(words_server).labels) & set(LATER)  # gathered, not yet adapted on
    assert client.call("forget") == {"model": "shipped"}
    assert entries(words_server) == []
    assert client.call("adapt") == {"queued": None}  # nothing left to adapt on
    assert client.next("error")["code"] == "too_few_samples"


def test_the_switch_off_gathers_nothing(words_server, rest):
    client = Client(words_server.url)
    try:
        for bad in [{"on": "no"}, {}, None, True]:
            assert client.call("learn_words", bad) is None, bad
            assert client.next("error")["code"] == "bad_payload"
        sign(client, "DO", rest)
        client.call("space")  # (would be confirmed by the next word: the switch drops it)
        assert client.call("learn_words", {"on": False}) == {"on": False}
        for word in ("LAY", "HOW"):  # two words confirmed at once: learning on, the server would adapt
            sign(client, word, rest)
            assert words_of(client.call("choose", {"raw": True})["events"])
        assert client.call("adapt") == {"queued": None}
        assert client.next("error")["code"] == "too_few_samples"
        assert client.call("learn_words", {"on": True}) == {"on": True}
        sign(client, "DO", rest)
        client.call("choose", {"raw": True})
        assert client.call("adapt")["queued"] is not None  # on again: the next word taught
    finally:
        client.close()


def test_the_page_has_the_switch_on_by_default_and_keeps_it_off_once_turned_off(words_server):
    from tests.test_page_e2e import expect, launch

    for browser in launch([]):  # no camera: the switch needs none
        page = browser.new_page()
        errors = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(words_server.url + "/?landmarks=server")
        expect(page.locator("#status-connection")).to_have_text("connected")
        switch = page.get_by_label("Learn from my spelling")
        expect(switch).to_be_checked()
        switch.uncheck()
        page.reload()
        expect(page.locator("#status-connection")).to_have_text("connected")
        expect(page.get_by_label("Learn from my spelling")).not_to_be_checked()  # this browser remembers
        assert errors == []


def test_a_word_keeps_its_latest_frames_and_one_word_waits_for_confirmation():
    """The bounds of free spelling, in the session's own objects: a word keeps at most `max_frames` frames with a
    hand (the latest), and only the last finished word waits for confirmation; confirming it labels only the frames
    kept."""
    from types import SimpleNamespace

    import numpy as np

    from app.live.confirmed import ConfirmedWords
    from app.live.learning import Gathered

    hand = SimpleNamespace(landmarks=np.zeros((21, 3), np.float32), is_left=False)
    gathered = Gathered(max_per_class=1000)
    words = ConfirmedWords(max_frames=5, gathered=lambda: gathered)
    for word in ("AB", "CD"):
        for letter in word:
            for _ in range(4):
                words.frame(hand, 1.0, letter)
            words.event({"type": "letter", "value": letter})
        assert len(words.word.frames) == 5  # 8 frames with a hand, the latest 5 kept
        words.finished(word, word, chosen=False)
    assert words.pending[1] == "CD"  # AB was confirmed when CD ended; CD waits
    assert {label: gathered.count(label) for label in "ABCD"} == {"A": 1, "B": 4, "C": 0, "D": 0}
