"""Words on strangers: letters drawn from a held-out signer's real samples, through the real speller and the
word decoder (docs/EXPERIMENTS.md, "Words, not letters").

    python -m bench.words [--signers kaggle asl_ai ...] [--fit [--names-kept 0.98]] [--train ML.TRAIN OPTIONS]
    python -m bench.words --calibrated     # the signer calibrates first (the page's amount), then spells
    python -m bench.words --pace 20 40     # a slow signer: each letter shown 20-39 frames (the default 8-14)
    python -m bench.words --users          # users' ways: short visits, a shared browser, names kept, fixing words
    python -m bench.words --letters        # letters lost and inserted at three paces, before and after, and clips

Trains (once) and caches one leave-one-signer-out model per signer under instance/bench-words/, keyed by the
training options and the code that shapes the model's input (ml/features.py, model.py, augment.py,
datasets.py), so a changed feature vector retrains; the spelled words are cached beside each model. A word is
signed as a hand signs it (bench.letters: held letters that shake, a hand moving between them). Prints the letters
lost and inserted at three paces (docs/EXPERIMENTS.md, "A held letter is never lost"), the
accuracy tables (docs/EXPERIMENTS.md: the words and names, then the two-letter words and bench/short.txt's
initials, abbreviations and short names) and writes the decoder's time to docs/PERFORMANCE.md; --fit prints the
decoder constants fitted on the fit words and names instead.
"""
from __future__ import annotations

import hashlib
import json
import math
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VISIT = 10  # words in a short visit (--users): a lesson, a conversation
CACHE = ROOT / "instance" / "bench-words"
TRAIN_OPTIONS = ("--epochs", "30", "--mirror", "0.2")
# The code whose change makes a cached model stale.
MODEL_CODE = ("ml/features.py", "ml/model.py", "ml/augment.py", "ml/datasets.py")


def model_key(signer: str, options: tuple[str, ...]) -> str:
    h = hashlib.sha256(json.dumps([signer, list(options)]).encode())
    for name in MODEL_CODE:
        h.update((ROOT / name).read_bytes())
    return h.hexdigest()[:16]


def model_path(signer: str, options: tuple[str, ...] = TRAIN_OPTIONS, log=sys.stderr) -> Path:
    """The held-out-signer model, trained with ml.train on first use."""
    from ml.datasets import SOURCES
    out = CACHE / f"{signer}-{model_key(signer, options)}"
    best = out / "best_model.pth"
    if not (out / "model_card.json").exists():  # written last: a run that was cut short trains again
        print(f"training the model without {signer} into {out} (minutes)", file=log, flush=True)
        subprocess.run([sys.executable, "-m", "ml.train", "--datasets", *SOURCES, *options,
                        "--test-groups", signer, "--out", str(out)], cwd=ROOT, check=True,
                       stdout=subprocess.DEVNULL)
    return best


NAMES = Path(__file__).resolve().parent / "names.txt"
SHORT = Path(__file__).resolve().parent / "short.txt"
DICTIONARY_WORDS = 1000   # the most frequent English words of three letters or more: the test words
FIT_WORDS = 500           # the next ones: for fitting the decoder's thresholds
FIRST_WORDS = 100         # a session's first words: how soon the decoder has learned a user's misreadings
FRAMES_PER_LETTER = (8, 15)  # frames a letter is shown, drawn from [low, high) (0.5-1 s at the page's 15 fps)
SEED = 0


def word_lists() -> dict[str, list[str]]:
    """Test and fit sets of dictionary words and names, disjoint (never fit on the test words)."""
    from app.live.decoder import shared_lexicon
    lexicon = shared_lexicon().logprior
    common = [w for w in sorted(lexicon, key=lexicon.get, reverse=True) if len(w) >= 3]
    names = [n.strip().upper() for n in NAMES.read_text().splitlines() if n.strip() and not n.startswith("#")]
    return {"words": common[:DICTIONARY_WORDS], "names": [n for i, n in enumerate(names) if i % 3 != 2],
            "fit words": common[DICTIONARY_WORDS:DICTIONARY_WORDS + FIT_WORDS],
            "fit names": [n for i, n in enumerate(names) if i % 3 == 2]}


def short_lists() -> dict[str, list[str]]:
    """Short spellings, test and fit sets: the lexicon's two-letter words ("short words", to be fixed when misread)
    and initials, abbreviations and short names ("short", bench/short.txt: meant as spelled)."""
    from app.live.decoder import shared_lexicon
    lexicon = shared_lexicon().logprior
    two = [w for w in sorted(lexicon, key=lexicon.get, reverse=True) if len(w) == 2]
    short = [n.strip().upper() for n in SHORT.read_text().splitlines() if n.strip() and not n.startswith("#")]
    return {"short words": [w for i, w in enumerate(two) if i % 3 != 2],
            "fit short words": [w for i, w in enumerate(two) if i % 3 == 2],
            "short": [n for i, n in enumerate(short) if i % 3 != 2],
            "fit short": [n for i, n in enumerate(short) if i % 3 == 2]}


READERS = ("still", "confident")  # the speller given each frame's hand, and given none (the confident rule alone)


def spell_all(model, meta, samples, words: list[str], config: dict, rng, runs: list,
              pace: tuple[int, int] = FRAMES_PER_LETTER, drawn: list | None = None
              ) -> dict[str, list[tuple[str, list, object]]]:
    """Each word signed letter by letter with the held-out signer's samples (bench.letters.word_hands: each letter
    held `pace` frames with a real hand's shake, the hand moving between letters, a rest before a double letter) at
    frame rate through the rolling window, the model and the real speller, read by each of READERS; returns
    {reader: [(word, the speller's committed letters, the gap after the last)]} for each word the signer has
    every letter of; `drawn` gets, per word spelled, the index into `samples` of each letter's sample."""
    import numpy as np
    import torch
    from app.live.decoder import letter_probs
    from app.live.speller import Speller
    from bench.letters import word_hands
    from ml.inference import fit_window
    feats, labels = samples.features(), samples.y
    by_class = {c: np.flatnonzero(labels == c) for c in np.unique(labels)}
    window, sp = meta["window"], config["speller"]
    plans, windows, hands = [], [], []  # per word: the frames' window indices (None = no hand)
    for word in words:
        if any(c not in by_class for c in word):
            continue
        frames, history = [], []
        chosen = [rng.choice(by_class[c]) for c in word]
        if drawn is not None:
            drawn.append(chosen)
        for hand in word_hands(word, [feats[i] for i in chosen], runs, pace, rng, sp["rest_frames"]):
            if hand is None:
                frames.append(None)
                history = []
                continue
            history = (history + [hand])[-window:]
            frames.append(len(windows))
            windows.append(np.stack(history))
            hands.append(hand)
        plans.append((word, frames))
    probs = np.zeros((len(windows), len(meta["classes"])), np.float32)
    with torch.inference_mode():
        for k in range(0, len(windows), 4096):
            # A window still filling (a word's first frames, after a rest) is padded as the live Predictor pads it.
            x = torch.as_tensor(np.stack([fit_window(w, window) for w in windows[k:k + 4096]]))
            probs[k:k + 4096] = torch.softmax(model(x).float(), -1).numpy()
    classes = list(meta["classes"])
    out = {reader: [] for reader in READERS}
    for word, frames in plans:
        for reader in READERS:
            speller = Speller(**sp)
            for f in frames:
                if f is None:
                    speller.update(None, 1.0)
                else:
                    p = probs[f]
                    best = int(p.argmax())
                    speller.update(classes[best], float(p[best]), letter_probs(p, classes),
                                   hands[f] if reader == "still" else None)
            speller.finish_word()
            out[reader].append((word, speller.finished, speller.finished_tail))
    return out


def per_signer_cached(kind: str, signers: list[str], options: tuple[str, ...], settings: list, code: tuple[str, ...],
                      compute, log=sys.stderr) -> dict:
    """{signer: compute(signer, its model's path)}, each pickled beside the signer's model as KIND-KEY.pkl, KEY
    hashing `settings` and the files in `code`: spelling every word takes minutes on 2 cores."""
    import pickle
    key = hashlib.sha256(json.dumps(settings).encode())
    for name in code:
        key.update((ROOT / name).read_bytes())
    out = {}
    for signer in signers:
        path = model_path(signer, options, log)
        cached = path.parent / f"{kind}-{key.hexdigest()[:16]}.pkl"
        if not cached.exists():
            cached.write_bytes(pickle.dumps(compute(signer, path)))
            print(f"{signer}: {kind} done", file=log, flush=True)
        out[signer] = pickle.loads(cached.read_bytes())
    return out


def evidence(signers: list[str], options: tuple[str, ...], lists: dict, log=sys.stderr,
             pace: tuple[int, int] = FRAMES_PER_LETTER, reader: str = "still") -> dict:
    """{signer: {list name: [(word, letters, tail)]}}: every word spelled with the signer's samples, each letter
    shown for `pace` frames (low, high), read by `reader` (READERS: the live speller, "still", or the confident
    rule alone)."""
    import numpy as np
    import torch
    from bench.letters import shake_runs
    from ml.checkpoint import load_checkpoint
    from ml.config import load_config
    from ml.datasets import SOURCES
    from ml.train import load_sets
    torch.set_num_threads(2)
    config = load_config()
    loaded = {}  # every source, loaded once and only when some signer is not cached

    def spell(signer, path):
        if not loaded:
            loaded["data"] = load_sets(list(SOURCES), config)
            loaded["runs"] = shake_runs(loaded["data"])
        model, meta = load_checkpoint(path)
        samples = loaded["data"].subset(loaded["data"].group == signer)
        rng = np.random.default_rng(SEED)
        spelled = {name: spell_all(model, meta, samples, words, config, rng, loaded["runs"], pace)
                   for name, words in lists.items()}
        return {r: {name: by_reader[r] for name, by_reader in spelled.items()} for r in READERS}

    ev = per_signer_cached("spelled", signers, options, [lists, config["speller"], SEED, list(pace)],
                           ("app/live/speller.py", "ml/inference.py", "bench/letters.py"), spell, log)
    return {signer: by_reader[reader] for signer, by_reader in ev.items()}


def calibrated_evidence(signers: list[str], options: tuple[str, ...], lists: dict, log=sys.stderr) -> dict:
    """{signer: {"shared" | "personal": {"words" | "names": spelled}}}: the held-out signer calibrates as on the
    page (20 settled frames per class of the calibration part, ml.calibration's split; ml.personal.adapt at its full
    steps, whatever the machine's load), then spells every word with letters drawn from the test part only, read
    by the shared fold model and by the personal one (same draws)."""
    import os

    import numpy as np
    import torch
    from bench.letters import shake_runs
    from ml.calibration import PHOTO_SIGNERS, calibration_parts, calibration_samples
    from ml.checkpoint import load_checkpoint
    from ml.config import load_config
    from ml.datasets import SOURCES
    from ml.model import CLASSES
    from ml.personal import adapt, make_replay
    from ml.train import load_sets
    os.environ.setdefault("CALIBRATE_FRAMES", "middle")  # the page records the settled sign, after a countdown
    torch.set_num_threads(2)
    config = load_config()
    lists = {k: lists[k] for k in ("words", "names")}
    loaded = {}  # every signer's data, loaded once and only when some signer is not cached

    def calibrate_and_spell(signer, path):
        if not loaded:
            data = load_sets(list(SOURCES), config)
            loaded.update(data=data, features=data.features(), labels=np.array([CLASSES.index(c) for c in data.y]),
                          runs=shake_runs(data))
        data, features, labels = loaded["data"], loaded["features"], loaded["labels"]
        model, meta = load_checkpoint(path)
        mine = data.group == signer
        replay = make_replay(features[~mine], labels[~mine], data.group[~mine], seed=SEED)
        replay = (replay["replay_features"].float().numpy(), replay["replay_labels"].long().numpy())
        person = data.subset(mine)
        pool, test = calibration_parts(person, signer)
        samples = calibration_samples(person, pool, 20, signer.startswith(PHOTO_SIGNERS))
        personal = adapt(model, meta, samples, replay=replay, seed=SEED, max_seconds=None)
        tested = person.subset(test)
        out = {"adapted": {"samples": len(samples), "before": personal.before, "after": personal.after,
                           "kept_shared": personal.kept_shared}}
        for name, m, m_meta in (("shared", model, meta), ("personal", personal.model, personal.meta)):
            rng = np.random.default_rng(SEED)  # the same draws for both models
            out[name] = {k: spell_all(m, m_meta, tested, words, config, rng, loaded["runs"])["still"]
                         for k, words in lists.items()}
        return out

    settings = [lists, config["speller"], SEED, FRAMES_PER_LETTER, "calibrated-20", os.environ["CALIBRATE_FRAMES"]]
    return per_signer_cached("calibrated", signers, options, settings,
                             ("app/live/speller.py", "ml/inference.py", "ml/personal.py", "ml/calibration.py",
                              "bench/letters.py"),
                             calibrate_and_spell, log)


def calibrated_table(ev: dict) -> list[str]:
    import numpy as np
    from app.live.decoder import Decoder, shared_lexicon
    decoder = Decoder(shared_lexicon())  # learns nothing: decode() alone keeps no state
    rows = ["| held-out signer | words (n) | shared raw | shared decoded | calibrated raw | calibrated decoded "
            "| calibrated decoded, learning | names (n) | shared raw | shared decoded | calibrated raw "
            "| calibrated decoded | calibrated decoded, learning |", "|" + "---|" * 13]
    cols: dict[tuple, list] = {}
    for signer, e in ev.items():
        learning = session(Decoder(shared_lexicon()), e["personal"])
        cells = [signer]
        for kind in ("words", "names"):
            cells.append(str(len(e["shared"][kind])))
            for model in ("shared", "personal"):
                r = score(decoder, e[model][kind])
                for x in ("raw", "decoded"):
                    cells.append(f"{r[x]:.1%}")
                    cols.setdefault((kind, model, x), []).append(r[x])
            cells.append(f"{learning[kind]:.1%}")
            cols.setdefault((kind, "personal", "learning"), []).append(learning[kind])
        rows.append("| " + " | ".join(cells) + " |")
    cells = ["mean of signers"]
    for kind in ("words", "names"):
        cells.append("")
        cells += [f"{np.mean(cols[(kind, m, x)]):.1%}" for m, x in (("shared", "raw"), ("shared", "decoded"), (
            "personal", "raw"), ("personal", "decoded"), ("personal", "learning"))]
    rows.append("| " + " | ".join(cells) + " |")
    return rows


def score(decoder, spelled: list) -> dict:
    """Raw and decoded accuracy; the decoder's time per word end (wall and CPU: the machine is shared, so
    the wall time includes waiting for a core)."""
    import time
    raw = decoded = 0
    times = []
    for word, letters, tail in spelled:
        t0, c0 = time.perf_counter(), time.thread_time()
        result = decoder.decode(letters, tail)
        times.append((time.perf_counter() - t0, time.thread_time() - c0))
        raw += result.raw == word
        decoded += result.value == word
    n = len(spelled)
    return {"n": n, "raw": raw / n if n else None, "decoded": decoded / n if n else None, "times": times}


def session(decoder, spelled: dict, visit: int = 0, carry: bool = False, fixes: bool = False) -> dict:
    """One user's session: the words and names of `spelled` ({kind: [(word, letters, tail)]}) in a shuffled
    order (seeded), the decoder learning this user's misreadings from each word it settles on (the user never
    corrects one: the decoder's own choices only). Per kind: decoded accuracy, the share of words spelled right
    that stay so ("KIND kept"), the accuracy over the session's first FIRST_WORDS of that kind ("KIND first"); and
    the time of each word end ("times"). `visit`: the words come in visits of that many; each visit's decoder
    starts with nothing learned, or (`carry`) with what the visits before learned, as the page brings it back.
    `fixes`: the user fixes a wrong word with one click when the page offers the right one ("keep it", or an
    alternative), as `choose` does (the decoder's lesson taken back, the choice taught and remembered): "KIND
    fixed" is the share right after the clicks, "clicks" the clicks per word."""
    from app.live.decoder import parse_misreadings
    import random
    import time
    items = [(kind, x) for kind, xs in spelled.items() for x in xs]
    random.Random(SEED).shuffle(items)
    right: dict[str, list[bool]] = {kind: [] for kind in spelled}
    kept: dict[str, list[bool]] = {kind: [] for kind in spelled}  # of the words spelled right
    fixed: dict[str, list[bool]] = {kind: [] for kind in spelled}
    times, sent, clicks = [], [], 0
    for i, (kind, (word, letters, tail)) in enumerate(items):
        if visit and i % visit == 0 and carry:
            decoder.restore_misreadings(*parse_misreadings(decoder.misreadings()))
        elif visit and i % visit == 0:
            decoder.forget_misreadings()
            decoder.user_words.clear()
        t0, c0 = time.perf_counter(), time.thread_time()
        result = decoder.decode(letters, tail)
        decoder.learn(result.value, result.raw)
        times.append((time.perf_counter() - t0, time.thread_time() - c0))
        c0 = time.thread_time()
        decoder.misreadings()  # the live path then sends the page what was learned (after the word's result)
        sent.append(time.thread_time() - c0)
        right[kind].append(result.value == word)
        if result.raw == word:
            kept[kind].append(result.value == word)
        click = fixes and result.value != word and (word == result.raw or word in result.alternatives)
        if click:
            decoder.remember(word)
            decoder.learn(result.value, result.raw, weight=-1)
            decoder.learn(word, result.raw)
        clicks += click
        fixed[kind].append(result.value == word or click)
    out = {"times": times, "sent": sent, "clicks": clicks / len(items)}  # per word end, seconds
    for kind in spelled:
        out[f"{kind} fixed"] = sum(fixed[kind]) / len(fixed[kind])
        out[kind] = sum(right[kind]) / len(right[kind])
        out[f"{kind} kept"] = sum(kept[kind]) / len(kept[kind]) if kept[kind] else 1.0
        out[f"{kind} first"] = sum(right[kind][:FIRST_WORDS]) / len(right[kind][:FIRST_WORDS])
    return out


def fit(ev: dict, short_ev: dict, paced: dict, names_kept: float = 0.98) -> dict:
    """SMOOTHING, NAME_LOGPRIOR, MISSED, GAP_MISSED, GAP_SLOPE and MARGIN that decode the most fit words right while
    the fit names lose at most half a point against their raw spelling and `names_kept` of the names spelled right
    stay so (pooled over the held-out signers). Ties: the larger margin. Then, with those, UNSURE and MARGIN again
    at every pace (fit_unsure, `paced`: the evidence of each of PACES), SHORT_LOGPRIOR (fit_short), LEARNED and
    LEARNED_PRIOR (fit_learning) and RESTORED (fit_restored)."""
    import itertools
    from app.live.decoder import Decoder, shared_lexicon
    sets = {label: [x for s in ev.values() for x in s[f"fit {label}"]] for label in ("words", "names")}
    raw_names = sum("".join(x.label for x in letters) == w for w, letters, _ in sets["names"]) / len(sets["names"])
    best = None
    for smoothing, name_logprior, missed, gap_missed, gap_slope in itertools.product(
            (0.05, 0.1), (-16.0, -14.0, -12.0), (0.05, 0.1, 0.2), (4.0, 8.0, 16.0, 32.0), (0.0, 0.25, 0.5, 1.0)):
        decoder = Decoder(shared_lexicon(), smoothing, name_logprior, 0.0, math.log(missed), math.log(gap_missed),
                          gap_slope, short_logprior=-math.inf, unsure=0.0)  # short spellings, unsure: next stages
        rows = {label: leads(decoder, spelled) for label, spelled in sets.items()}
        for margin in MARGINS:
            acc, kept = decided(rows, margin)
            key = (acc["names"] >= raw_names - 0.005 and kept >= names_kept, acc["words"], acc["names"], margin)
            if best is None or key > best[0]:
                best = (key, {"smoothing": smoothing, "name_logprior": name_logprior, "missed": missed,
                              "gap_missed": gap_missed, "gap_slope": gap_slope,
                              "margin": margin, "fit_words_decoded": round(acc["words"], 4),
                              "fit_names_decoded": round(acc["names"], 4), "fit_names_raw": round(raw_names, 4),
                              "fit_names_right_kept": round(kept, 4),
                              "fit_words": len(sets["words"]), "fit_names": len(sets["names"])})
    constants = best[1] | fit_unsure(paced, best[1], names_kept)
    constants |= fit_short(ev, short_ev, constants, names_kept)
    return fit_learning(ev, constants, names_kept)


MARGINS = [m / 2 for m in range(-4, 21)]  # --fit: the decoder's MARGIN tried
UNSURE_COSTS = (0.0, 1.0, 2.0, 3.0, 4.0, 6.0)  # --fit: the decoder's UNSURE tried (log units an unsure letter)


def leads(decoder, spelled: list) -> dict:
    """Per spelled word, as arrays: the best word's lead over the raw spelling, whether that word is the one signed,
    whether the raw spelling is, and how many of its letters are unsure (the raw spelling's score falls by UNSURE
    times that: a lead for any UNSURE is the decoder's at UNSURE 0 plus it)."""
    import numpy as np
    ranked = [(decoder.rank(letters, tail), w, letters) for w, letters, tail in spelled]
    return {"lead": np.array([s[0][0] - raw if s else -math.inf for (s, raw), _, _ in ranked]),
            "top right": np.array([bool(s) and s[0][1] == w for (s, _), w, _ in ranked]),
            "raw right": np.array(["".join(x.label for x in letters) == w for _, w, letters in ranked]),
            "unsure": np.array([sum(x.unsure for x in letters) for _, _, letters in ranked])}


def decided(rows: dict, margin: float, unsure: float = 0.0) -> tuple[dict, float]:
    """({set: share of words decoded right}, share of the names spelled right that stay so) for `leads` rows."""
    import numpy as np
    takes = {label: r["lead"] + unsure * r["unsure"] > margin for label, r in rows.items()}
    acc = {label: float(np.where(takes[label], r["top right"], r["raw right"]).mean()) for label, r in rows.items()}
    names = rows["names"]
    right = ~takes["names"][names["raw right"]] | names["top right"][names["raw right"]]
    return acc, float(right.mean()) if right.size else 1.0


def fit_unsure(paced: dict, constants: dict, names_kept: float = 0.98) -> dict:
    """UNSURE and MARGIN, with `fit`'s other constants, at every pace of PACES (the page cannot know a user's pace,
    and a fluent signer's letters are unsure most often): the most fit words right (mean of the paces) while at
    every pace the fit names lose at most half a point against their raw spelling and keep `names_kept` of those
    spelled right, or, at a pace where the decoder without UNSURE (`fit`'s margin) keeps fewer, at most one point
    fewer than it keeps there. Ties: the smaller UNSURE, then the larger margin."""
    import itertools
    from app.live.decoder import Decoder, shared_lexicon
    decoder = Decoder(shared_lexicon(), **decoder_options(constants | {"unsure": 0.0}), short_logprior=-math.inf)
    rows = {pace: {label: leads(decoder, [x for s in ev.values() for x in s[f"fit {label}"]])
                   for label in ("words", "names")} for pace, ev in paced.items()}
    without = {pace: decided(r, constants["margin"])[1] for pace, r in rows.items()}  # right names kept, UNSURE 0
    floors = {pace: names_kept if k >= names_kept else k - 0.01 for pace, k in without.items()}
    best, results = None, {}
    for unsure, margin in itertools.product(UNSURE_COSTS, MARGINS):
        words, ok = [], True
        for pace, r in rows.items():
            acc, kept = decided(r, margin, unsure)
            ok &= acc["names"] >= r["names"]["raw right"].mean() - 0.005 and kept >= floors[pace]
            words.append(acc["words"])
            results[unsure, margin, pace] = {"words": round(acc["words"], 4), "names": round(acc["names"], 4),
                                             "names_right_kept": round(kept, 4)}
        key = (ok, sum(words) / len(words), -unsure, margin)
        if best is None or key > best[0]:
            best = (key, {"unsure": unsure, "margin": margin, "fit_unsure_words": round(key[1], 4)})
    margin = best[1]["margin"]  # each UNSURE tried, at the margin chosen
    return best[1] | {"fit_unsure": {str(u): {pace: results[u, margin, pace] for pace in rows} for u in UNSURE_COSTS}}


def decoder_options(c: dict) -> dict:
    """Decoder keyword arguments from fitted constants (`fit`'s form: probabilities, not their logs)."""
    logs = {"missed", "gap_missed"}
    names = ("smoothing", "name_logprior", "margin", "missed", "gap_missed", "gap_slope", "unsure", "short_logprior",
             "short_slope", "learned", "learned_prior")
    return {k: math.log(c[k]) if k in logs else c[k] for k in names if k in c}


def fit_short(ev: dict, short_ev: dict, constants: dict, names_kept: float = 0.98,
              priors=(-math.inf, -6.0, -4.0, -2.0, -1.0, 0.0, 2.0, 4.0, 6.0),
              slopes=(math.log(26), 4.5, 6.0)) -> dict:
    """SHORT_LOGPRIOR and SHORT_SLOPE, with `fit`'s constants: the most fit words and names right (the mean of the
    fit words with the fit two-letter words, pooled, and the fit names with the fit short spellings, pooled: the
    prior is for what fingerspelling is mostly for, so names count as much as words) while those names lose at most
    half a point against their raw spelling and `names_kept` of those spelled right stay so (if no value keeps that
    many, as many as the most protective value keeps). Decoded alone, as `fit`. Ties: the larger."""
    from app.live.decoder import Decoder, shared_lexicon
    words = [x for s in ev.values() for x in s["fit words"]] + [x for s in short_ev.values() for x in s["fit short words"]]
    names = [x for s in ev.values() for x in s["fit names"]] + [x for s in short_ev.values() for x in s["fit short"]]
    raw_names = sum("".join(x.label for x in letters) == w for w, letters, _ in names) / len(names)
    rows = []
    for prior, slope in [(-math.inf, math.log(26))] + [(p, c) for p in priors[1:] for c in slopes]:
        decoder = Decoder(shared_lexicon(), **decoder_options(constants | {"short_logprior": prior,
                                                                           "short_slope": slope}))
        w, n = score(decoder, words)["decoded"], score(decoder, names)["decoded"]
        right = [decoder.decode(letters, tail).value == word for word, letters, tail in names
                 if "".join(x.label for x in letters) == word]
        rows.append((prior, slope, w, n, sum(right) / len(right)))
    floor = min(names_kept, max(kept for *_, kept in rows))
    best = max(rows, key=lambda r: (r[3] >= raw_names - 0.005 and r[4] >= floor, r[2] + r[3], r[3], r[0], -r[1]))
    return {"short_logprior": best[0], "short_slope": round(best[1], 4), "fit_short_names_raw": round(raw_names, 4),
            "fit_short": {f"{r[0]} {r[1]:.2f}": {"words": round(r[2], 4), "names": round(r[3], 4),
                                                 "names_right_kept": round(r[4], 4)} for r in rows}}


def fit_learning(ev: dict, constants: dict, names_kept: float = 0.98) -> dict:
    """`constants` (fit's) with LEARNED and LEARNED_PRIOR: the most fit words right in the held-out signers'
    sessions (bench.words.session, mean of signers) while the fit names stay within half a point of their raw
    spelling and the share of right names kept is `names_kept`, or, if not learning keeps fewer, no fewer than
    not learning keeps. Ties: the least learning."""
    import itertools
    from app.live.decoder import Decoder, shared_lexicon
    fitted = decoder_options({k: v for k, v in constants.items() if k not in ("learned", "learned_prior")})
    sessions = [{"words": lists["fit words"], "names": lists["fit names"]} for lists in ev.values()]
    raw_names = sum(sum("".join(x.label for x in letters) == w for w, letters, _ in x["names"]) / len(x["names"])
                    for x in sessions) / len(sessions)
    best, floor = None, None
    for learned, learned_prior in itertools.product((0.0, 0.25, 0.5, 1.0, 2.0, 4.0), (1.0, 2.0, 5.0, 10.0, 20.0)):
        r = [session(Decoder(shared_lexicon(), **fitted, learned=learned, learned_prior=learned_prior), x)
             for x in sessions]
        words, names, kept = (sum(x[k] for x in r) / len(r) for k in ("words", "names", "names kept"))
        floor = min(names_kept, kept) if floor is None else floor  # the first is learned 0: no learning
        key = (names >= raw_names - 0.005 and kept >= floor, words, names, -learned)
        if best is None or key > best[0]:
            best = (key, {"learned": learned, "learned_prior": learned_prior, "fit_session_words": round(words, 4),
                          "fit_session_names": round(names, 4), "fit_session_names_right_kept": round(kept, 4)})
    constants = constants | best[1]
    return constants | fit_restored(ev, constants)


def fit_restored(ev: dict, constants: dict, caps=(None, 50, 20, 10, 5, 2)) -> dict:
    """RESTORED, how many letters of each an earlier visit counts as when the page brings it back: the most fit words
    right for a returning user (the second half of each signer's fit session in visits of VISIT, starting from what
    the first half taught) while the next user of the same browser (one signer's second half as one session,
    starting from what another signer's first half taught; every pair) loses at most half a point against a fresh
    start (if no cap keeps it so, the cap that loses it least). Ties: the smaller."""
    import random
    from app.live import decoder as decoding
    fitted = decoder_options(constants)

    def halves(lists):
        items = [(kind, x) for kind in ("words", "names") for x in lists[f"fit {kind}"]]
        random.Random(SEED).shuffle(items)
        return [{kind: [x for k, x in part if k == kind] for kind in ("words", "names")}
                for part in (items[:len(items) // 2], items[len(items) // 2:])]

    parts = {signer: halves(lists) for signer, lists in ev.items()}
    taught = {}
    for signer, (first, _) in parts.items():
        d = decoding.Decoder(decoding.shared_lexicon(), **fitted)
        session(d, first)
        taught[signer] = decoding.parse_misreadings(d.misreadings())

    def words(start, second, cap, visit=0):
        d = decoding.Decoder(decoding.shared_lexicon(), **fitted, restored=math.inf if cap is None else cap)
        if start:
            d.restore_misreadings(*start)
        return session(d, second, visit, carry=True)["words"]

    fresh = sum(words(None, second, None) for _, second in parts.values()) / len(parts)
    fresh_visits = sum(session(decoding.Decoder(decoding.shared_lexicon(), **fitted), second, VISIT)["words"]
                       for _, second in parts.values()) / len(parts)
    rows, table = [], {}
    for cap in caps:
        returning = sum(words(taught[s], second, cap, VISIT) for s, (_, second) in parts.items()) / len(parts)
        pairs = [(a, b) for a in parts for b in parts if a != b]
        next_user = sum(words(taught[a], parts[b][1], cap) for a, b in pairs) / len(pairs)
        table[str(cap)] = {"returning_visits": round(returning, 4), "next_user_session": round(next_user, 4)}
        if cap is not None:
            rows.append((cap, returning, next_user))
    # If no cap keeps the next user within half a point, the one that loses them least.
    floor = min(fresh - 0.005, max(next_user for *_, next_user in rows))
    best = max(rows, key=lambda r: (r[2] >= floor, r[1], -r[0]))
    return {"restored": best[0], "fit_restored": {"nothing": {"returning_visits": round(fresh_visits, 4),
                                                                "next_user_session": round(fresh, 4)}, **table}}


def table(ev: dict) -> list[str]:
    import numpy as np
    from app.live.decoder import Decoder, shared_lexicon
    decoder = Decoder(shared_lexicon())  # learns nothing: decode() alone keeps no state
    rows = ["| held-out signer | words (n) | raw | decoded | decoded, learning | names (n) | raw | decoded "
            "| decoded, learning | the session's first 100 words: decoded | learning |",
            "|---|---|---|---|---|---|---|---|---|---|---|"]
    times, sent, cols = [], [], {}
    for signer, lists in ev.items():
        spelled = {name: lists[name] for name in ("words", "names")}
        learning = session(Decoder(shared_lexicon()), spelled)
        first = session(Decoder(shared_lexicon(), learned=0.0), spelled)["words first"]  # the same words
        times += learning["times"]
        sent += learning["sent"]
        cells = [signer]
        for name in ("words", "names"):
            r = score(decoder, lists[name])
            for col, v in (("n", r["n"]), ("raw", r["raw"]), ("decoded", r["decoded"]), ("learning", learning[name])):
                cols.setdefault((name, col), []).append(v)
                cells.append(str(v) if col == "n" else f"{v:.1%}")
        for col, v in (("first", first), ("first learning", learning["words first"])):
            cols.setdefault(col, []).append(v)
            cells.append(f"{v:.1%}")
        rows.append("| " + " | ".join(cells) + " |")
    cells = ["mean of signers"]
    for name in ("words", "names"):
        cells += [str(sum(cols[(name, "n")]))] + [f"{np.mean(cols[(name, col)]):.1%}"
                                                  for col in ("raw", "decoded", "learning")]
    cells += [f"{np.mean(cols[col]):.1%}" for col in ("first", "first learning")]
    rows.append("| " + " | ".join(cells) + " |")
    import time
    suggest = []  # the suggestions after each letter of each word (the live path computes them per letter)
    for lists in ev.values():
        for _, letters, _ in lists["words"]:
            for k in range(1, len(letters) + 1):
                c0 = time.thread_time()
                decoder.suggest(letters[:k])
                suggest.append(time.thread_time() - c0)
    s = np.array(suggest) * 1000
    rows.append(f"suggestions per letter (CPU): mean {s.mean():.3f} ms, p99 {np.percentile(s, 99):.3f} ms, "
                f"max {s.max():.3f} ms over {len(s)} letters")
    t = np.array(sent) * 1000
    rows.append(f"what was learned, for the page to keep, after each word end (CPU): mean {t.mean():.3f} ms, "
                f"p99 {np.percentile(t, 99):.3f} ms, max {t.max():.3f} ms over {len(t)} words")
    for i, kind in enumerate(("wall", "CPU")):
        t = np.array([x[i] for x in times]) * 1000
        rows.append(f"decoder time per word end ({kind}): mean {t.mean():.3f} ms, median {np.median(t):.3f} ms, "
                    f"p99 {np.percentile(t, 99):.3f} ms, max {t.max():.3f} ms over {len(t)} words")
    return rows


def users_table(ev: dict) -> list[str]:
    """How users fare, beyond one long session of words the user never corrects. Short visits: each
    signer's words and names (one session's order) in visits of VISIT words, each starting from nothing learned
    (as before) or from what the visits before learned (as the page brings it back). The next user of the same
    browser: a session that starts from what another signer's whole session taught (every pair of signers),
    against a fresh start. Names kept before: every name of the list kept on an earlier visit, against a user new
    to the decoder, decoded alone and in a session (an upper bound: a user keeps only the names the decoder once
    changed). A user who fixes: in one session, a wrong word is fixed with one click when the page offers the
    right one."""
    import numpy as np
    from app.live.decoder import Decoder, parse_misreadings, shared_lexicon

    def decoder(names=()):
        d = Decoder(shared_lexicon())
        for name in names:
            d.remember(name)
        return d

    def row(signer, label, values):
        return f"| {signer} | {label} | " + " | ".join(f"{v:.1%}" for v in values) + " |"

    visits = [f"Visits of {VISIT} words:", "",
              "| held-out signer | each visit starts from | words | names | right words kept | right names kept |",
              "|---|---|---|---|---|---|"]
    after = ["The next user of the same browser (one session):", "",
             "| held-out signer | the session starts from | words | names | right words kept | right names kept |",
             "|---|---|---|---|---|---|"]
    kept = ["Names kept before:", "",
            "| held-out signer | names kept before | words decoded | names decoded | words, learning "
            "| names, learning | right words kept, learning | right names kept, learning |",
            "|---|---|---|---|---|---|---|---|"]
    spelled = {signer: {name: lists[name] for name in ("words", "names")} for signer, lists in ev.items()}
    taught = {}  # what each signer's whole session taught, as the page keeps it
    for signer in ev:
        d = decoder()
        session(d, spelled[signer])
        taught[signer] = parse_misreadings(d.misreadings())
    visit_cols, after_cols, kept_cols = {}, {}, {}
    for signer, lists in ev.items():
        for carried, carry in (("nothing", False), ("what was learned", True)):
            r = session(decoder(), spelled[signer], VISIT, carry)
            visit_cols.setdefault(carried, []).append([r[k] for k in ("words", "names", "words kept", "names kept")])
            visits.append(row(signer, carried, visit_cols[carried][-1]))
        others = []
        for other in ev:
            if other != signer:
                d = decoder()
                d.restore_misreadings(*taught[other])
                r = session(d, spelled[signer])
                others.append([r[k] for k in ("words", "names", "words kept", "names kept")])
        r = session(decoder(), spelled[signer])
        for label, values in (("nothing", [r[k] for k in ("words", "names", "words kept", "names kept")]),
                              ("another signer's (mean of four)", list(np.mean(others, axis=0)))):
            after_cols.setdefault(label, []).append(values)
            after.append(row(signer, label, values))
        known = sorted({word for word, _, _ in lists["names"]})
        for names in ([], known):
            learning = session(decoder(names), spelled[signer])
            values = [score(decoder(names), lists["words"])["decoded"], score(decoder(names), lists["names"])["decoded"],
                      learning["words"], learning["names"], learning["words kept"], learning["names kept"]]
            kept_cols.setdefault(len(names) > 0, []).append(values)
            kept.append(f"| {signer} | {len(names)} | " + " | ".join(f"{v:.1%}" for v in values) + " |")
    fixing = ["A user who fixes a wrong word with one click when the page offers the right one (one session):", "",
              "| held-out signer | words shown | words after the clicks | names shown | names after the clicks "
              "| clicks per 100 spelled |", "|---|---|---|---|---|---|"]
    fix_cols = []
    for signer in ev:
        r = session(decoder(), spelled[signer], fixes=True)
        fix_cols.append([r["words"], r["words fixed"], r["names"], r["names fixed"], r["clicks"]])
        fixing.append(f"| {signer} | " + " | ".join(f"{v:.1%}" for v in fix_cols[-1][:4]) + f" | {100 * r['clicks']:.1f} |")
    mean = np.mean(fix_cols, axis=0)
    fixing.append("| mean of signers | " + " | ".join(f"{v:.1%}" for v in mean[:4]) + f" | {100 * mean[4]:.1f} |")
    visits += [row("mean of signers", label, np.mean(v, axis=0)) for label, v in visit_cols.items()]
    after += [row("mean of signers", label, np.mean(v, axis=0)) for label, v in after_cols.items()]
    kept += [row("mean of signers", "all" if names else "none", np.mean(v, axis=0)) for names, v in kept_cols.items()]
    return visits + [""] + after + [""] + kept + [""] + fixing


def short_table(ev: dict, short_ev: dict) -> list[str]:
    """Short spellings per held-out signer: the lexicon's two-letter words and the initials, abbreviations and
    short names of bench/short.txt, decoded alone and in a session with the signer's words and names."""
    import numpy as np
    from app.live.decoder import Decoder, shared_lexicon
    rows = ["| held-out signer | two-letter words (n) | raw | decoded | decoded, learning | initials, abbreviations, "
            "short names (n) | raw | decoded | decoded, learning | right ones kept |", "|---|---|---|---|---|---|---|---|---|---|"]
    cols = []
    for signer, lists in short_ev.items():
        spelled = {k: ev[signer][k] for k in ("words", "names")} | {k: lists[k] for k in ("short words", "short")}
        learning = session(Decoder(shared_lexicon()), spelled)
        values = []
        for kind in ("short words", "short"):
            r = score(Decoder(shared_lexicon()), lists[kind])
            values += [r["n"], r["raw"], r["decoded"], learning[kind]]
        values.append(learning["short kept"])
        cols.append(values)
        rows.append(f"| {signer} | " + " | ".join(str(v) if isinstance(v, int) else f"{v:.1%}" for v in values) + " |")
    mean = np.mean(cols, axis=0)
    rows.append("| mean of signers | " + " | ".join(str(int(v * len(cols))) if i in (0, 4) else f"{v:.1%}"
                                                    for i, v in enumerate(mean)) + " |")
    return rows


PACES = {"5": (5, 6), "8-14": (8, 15), "20-39": (20, 40)}  # frames a letter is held: fluent, a learner, slow


def letters_table(signers: list[str], options: tuple[str, ...], log=sys.stderr) -> list[str]:
    """Letters lost and inserted, words and names, raw and decoded, at each of PACES, read by each of READERS
    (the confident rule alone: the speller before it was given the hand), on every held-out signer; then the
    signademy clips read as the live page reads them (bench.letters.read_clips)."""
    import numpy as np
    from app.live.decoder import Decoder, shared_lexicon
    from bench.letters import letter_counts
    decoder = Decoder(shared_lexicon())
    lists = word_lists()
    rows = ["| pace (frames a letter) | read by | held-out signer | letters signed | lost | inserted | misread "
            "| unsure | words raw | words decoded | names raw | names decoded |", "|" + "---|" * 12]
    for pace_name, pace in PACES.items():
        for reader in READERS:
            ev = evidence(signers, options, lists, log, pace, reader)
            cols = []
            for signer, spelled in ev.items():
                both = spelled["words"] + spelled["names"]
                c = letter_counts(both)
                w, n = score(decoder, spelled["words"]), score(decoder, spelled["names"])
                values = [c["signed"], c["lost"] / c["signed"], c["inserted"] / c["signed"],
                          c["misread"] / c["signed"], c["unsure"] / max(c["committed"], 1),
                          w["raw"], w["decoded"], n["raw"], n["decoded"]]
                cols.append(values)
                rows.append(f"| {pace_name} | {reader} | {signer} | {values[0]} | "
                            + " | ".join(f"{v:.1%}" for v in values[1:]) + " |")
            mean = np.mean(cols, axis=0)
            rows.append(f"| {pace_name} | {reader} | **mean of signers** | {int(sum(c[0] for c in cols))} | "
                        + " | ".join(f"**{v:.1%}**" for v in mean[1:]) + " |")
    return rows + [""] + clips_table(options, log)


def clips_table(options: tuple[str, ...], log=sys.stderr) -> list[str]:
    """The signademy letter clips (the signer raises a hand, holds the letter, lowers it: real motion before and
    after) read as the live page reads a camera, by the model that never saw that signer."""
    from app.live.speller import Speller
    from bench.letters import edits, read_clips
    from ml.checkpoint import load_checkpoint
    from ml.config import data_path, load_config
    config = load_config()
    readers = {"still": (lambda: Speller(**config["speller"]), True),
               "confident": (lambda: Speller(**config["speller"]), False)}

    def read(signer, path):
        model, meta = load_checkpoint(path)
        return read_clips(model, meta, data_path(config, "signademy"), config, readers)

    read_by = per_signer_cached("clips", ["signademy"], options, [config["speller"], config["landmarks"]],
                                ("app/live/speller.py", "ml/inference.py", "bench/letters.py"), read, log)["signademy"]
    rows = ["| read by | clips | letter right | letters lost | letters inserted | what each clip wrote |",
            "|---|---|---|---|---|---|"]
    for reader, read in read_by.items():
        counts = [edits(letter, got) for letter, got in read]
        rows.append(f"| {reader} | {len(read)} | {sum(letter in got for letter, got in read)} | "
                    f"{sum(c[0] for c in counts)} | {sum(c[1] for c in counts)} | "
                    + " ".join(f"{letter}:{got or '-'}" for letter, got in read) + " |")
    return rows


def speller_cost(frames: int = 3000) -> str:
    """The speller's CPU time per frame, given the hand (the still-hand rule) and not: letters of 10 shaking frames
    each, read unsure, the word ended every 20 letters."""
    import time

    import numpy as np
    from app.live.decoder import LETTERS
    from app.live.speller import Speller
    rng = np.random.default_rng(SEED)
    probs = [float(x) for x in rng.dirichlet(np.ones(len(LETTERS)))]
    hands = rng.normal(0, 0.01, (frames, 67)).astype(np.float32) + np.arange(frames)[:, None] // 10

    def per_frame(with_hand: bool) -> float:
        speller, c0 = Speller(), time.thread_time()
        for i in range(frames):
            speller.update(LETTERS[i // 10 % len(LETTERS)], 0.5, probs, hands[i] if with_hand else None)
            if i % 200 == 199:
                speller.finish_word()
        return (time.thread_time() - c0) / frames * 1e6

    return (f"speller per frame (CPU): {per_frame(True):.0f} us given the hand (the still-hand rule), "
            f"{per_frame(False):.0f} us without")


def lexicon_cost() -> str:
    """The shared lexicon's load time and memory (its near-word index included), measured in this process."""
    import os
    import time
    from app.live.decoder import NEAR_WORDS, shared_lexicon
    from bench.report import rss_mb

    before, t0 = rss_mb(os.getpid()), time.perf_counter()
    words = len(shared_lexicon().logprior)
    seconds, grown = time.perf_counter() - t0, rss_mb(os.getpid()) - before
    return (f"lexicon, once per process: loaded in {seconds:.2f} s, {grown:.0f} MB "
            f"resident ({words:,} words, and the near-word index of the {NEAR_WORDS:,} most frequent)")


def parse_args(argv):
    import argparse
    p = argparse.ArgumentParser(prog="python -m bench.words", description=__doc__.split("\n")[0])
    p.add_argument("--signers", nargs="+", default=None, help="held-out signers (default: all five)")
    p.add_argument("--train-only", action="store_true", help="train and cache the models, nothing else")
    p.add_argument("--fit", action="store_true", help="fit the decoder's thresholds on the fit words and names")
    p.add_argument("--calibrated", action="store_true",
                   help="each held-out signer calibrates first: words from their test part, shared and personal model")
    p.add_argument("--letters", action="store_true",
                   help="letters lost and inserted at three paces, before and after the still-hand rule, and the "
                        "video clips (also printed first by a plain run)")
    p.add_argument("--users", action="store_true",
                   help="users' ways: short visits that bring back what was learned, the next user of a browser, "
                        "names kept before, a user who fixes wrong words with a click")
    p.add_argument("--pace", nargs=2, type=int, default=list(FRAMES_PER_LETTER), metavar=("LOW", "HIGH"),
                   help="frames each letter is shown, drawn from [LOW, HIGH) (default: %(default)s; a slow signer: "
                        "20 40). Another pace prints its table and leaves docs/PERFORMANCE.md as it is")
    p.add_argument("--names-kept", type=float, default=0.98,
                   help="--fit: the share of the fit names spelled right that must stay as spelled")
    p.add_argument("--train", nargs=argparse.REMAINDER, default=list(TRAIN_OPTIONS),
                   help=f"ml.train options for the held-out models (default: {' '.join(TRAIN_OPTIONS)})")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from ml.experiments import SIGNERS
    signers = args.signers or list(SIGNERS)
    if args.train_only:
        for s in signers:
            print(model_path(s, tuple(args.train)), flush=True)
        return 0
    if args.calibrated:
        print("\n".join(calibrated_table(calibrated_evidence(signers, tuple(args.train), word_lists()))), flush=True)
        return 0
    if args.letters:
        print("\n".join(letters_table(signers, tuple(args.train))), flush=True)
        return 0
    lexicon = lexicon_cost()
    pace = tuple(args.pace)
    ev = evidence(signers, tuple(args.train), word_lists(), pace=pace)
    if args.fit:
        paced = {name: evidence(signers, tuple(args.train), word_lists(), pace=p) for name, p in PACES.items()}
        print(json.dumps(fit(ev, evidence(signers, tuple(args.train), short_lists(), pace=pace), paced,
                             args.names_kept)), flush=True)
        return 0
    if args.users:
        print("\n".join(users_table(ev)), flush=True)
        return 0
    import gc
    gc.freeze()  # the cached words are the bench's, not the server's: the collector's pauses should not walk them
    rows = table(ev)
    print("\n".join(letters_table(signers, tuple(args.train)) + [""] + rows + [""]
                    + short_table(ev, evidence(signers, tuple(args.train), short_lists(), pace=pace))),
          flush=True)
    if pace != FRAMES_PER_LETTER:
        return 0
    from bench.report import machine_label, write_section
    times = [r for r in rows if r.startswith(("decoder time", "suggestions", "what was learned"))]
    command = " ".join(["python -m bench.words", *(["--signers", *args.signers] if args.signers else []),
                        "--train", *args.train])
    write_section("words", "\n".join([
        "## Word decoder", "",
        f"`{command}` on {machine_label()}, shared with other work "
        "(wall time includes waiting for a core; CPU time is the decoder's own). Target: <= 2 ms per word end. "
        "A word end is decoding it and learning from it, in a session of the held-out signer's words and names "
        "(bench.words.session), as the live path does.", "",
        *[f"- {t}" for t in times + [lexicon, speller_cost()]], "",
        "Accuracy on held-out signers: docs/EXPERIMENTS.md, \"Words, not letters\"."]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
