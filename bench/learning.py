"""Learning from free spelling (issue 22, point 3): do a stranger's own confirmed words, each letter labelled by
the word they confirmed, make a personal model that reads their next words better, names included?

    python -m bench.learning [--signers kaggle asl_ai ...] [--words 200]

Per held-out signer (the fold models of `ml.experiments practice --folds`, ml.calibration's two parts of their data): a free-spelling session
of 50 words and names (bench.words' fit lists, shuffled) signed from the calibration part as bench.words signs
them, through the speller and a decoder that learns as the live path does. After 10, 25 and 50 of them
ml.personal.adapt (as served) makes a personal model from their letters, each sample labelled with the confirmed
word's letter at its place (a Levenshtein alignment to what was signed: a letter the confirmed word lacks gives no
sample, a wrong confirmed letter a wrong label), and the session goes on with that model. "Confirmed" is every
word the decoder settled on (a user who never undoes one), or, as a bound, only the words it got right. Each model
then reads the same test words and names of bench.words, signed from the other part (the same draws), in a session
of their own; the shared fold model is the baseline. Measured on a busy shared 2-core machine.
"""
from __future__ import annotations

import argparse
import json
import random
import sys

import numpy as np

from bench.words import ROOT, SEED, session, spell_all, word_lists

AFTER = (10, 25, 50)  # adapt after this many words of free spelling
CONFIRMED = ("decoded", "right")  # every word the decoder settled on; only the right ones (a bound)


def aligned_labels(meant: str, confirmed: str) -> list[str | None]:
    """Per letter of `meant` (what was signed), the letter of `confirmed` aligned to it, or None: the alignment
    practice and the live free spelling label their frames by (app.live.word_frames.align)."""
    from app.live.word_frames import align
    out: list[str | None] = [None] * len(meant)
    for i, j in align(meant, confirmed):
        if i is not None and j is not None:
            out[i] = confirmed[j]
    return out


def pseudo_samples(person, spelled: list, drawn: list, confirmed: list[str]):
    """(ml.personal.Samples, the share of wrong labels) from spelled words: each letter's sample (person index)
    labelled by the confirmed word."""
    from ml.personal import Samples
    idx, labels = [], []
    for (word, _, _), chosen, value in zip(spelled, drawn, confirmed):
        for i, label in zip(chosen, aligned_labels(word, value)):
            if label is not None:
                idx.append(i)
                labels.append(label)
    idx = np.array(idx, dtype=int)
    labels = np.array(labels)
    return (Samples(person.X[idx], person.aspect[idx], person.handedness[idx] == "Right", labels, np.arange(len(idx))),
            float((labels != person.y[idx]).mean()) if len(idx) else 0.0)


def free_spelling(fold, items: list[str], config: dict, runs: list, keep: str) -> dict:
    """The session of `items` signed from the calibration part: {n: the personal model after n words}."""
    from app.live.decoder import Decoder, shared_lexicon
    from ml.calibration import adapt_as_served
    pool = np.concatenate(list(fold.pool.values()))
    person = fold.person.subset(np.isin(np.arange(len(fold.person)), pool))
    decoder, rng = Decoder(shared_lexicon()), np.random.default_rng(SEED)
    model, meta = fold.model, fold.meta
    spelled, drawn, confirmed, models, start = [], [], [], {}, 0
    for n in AFTER:
        chunk_drawn: list = []
        chunk = spell_all(model, meta, person, items[start:n], config, rng, runs, drawn=chunk_drawn)["still"]
        for word, letters, tail in chunk:
            result = decoder.decode(letters, tail)
            decoder.learn(result.value, result.raw)
            confirmed.append(result.value if keep == "decoded" or result.value == word else None)
        spelled += chunk
        drawn += chunk_drawn
        start = n
        kept = [k for k, c in enumerate(confirmed) if c is not None]
        samples, wrong = pseudo_samples(person, [spelled[k] for k in kept], [drawn[k] for k in kept],
                                 [confirmed[k] for k in kept])
        result, seconds, cpu = adapt_as_served(fold, samples, SEED, {"max_seconds": None})  # full steps, any load
        models[n] = {"model": result.model, "meta": result.meta, "samples": len(samples), "seconds": seconds, "cpu_seconds": cpu,
                     "kept_shared": result.kept_shared,
                     "decoded_right": float(np.mean([c == w for c, (w, _, _) in zip(confirmed, spelled)])),
                     "wrong_labels": wrong}
        model, meta = result.model, result.meta
    return models


def read_tests(fold, model, meta, lists: dict, config: dict, runs: list) -> dict:
    """The test words and names signed from the test part (the same draws for every model), read in a session."""
    from app.live.decoder import Decoder, shared_lexicon
    test = np.ones(len(fold.person), bool)
    test[np.concatenate(list(fold.pool.values()))] = False
    tested = fold.person.subset(test)
    rng = np.random.default_rng(SEED)
    spelled = {k: spell_all(model, meta, tested, words, config, rng, runs)["still"] for k, words in lists.items()}
    return session(Decoder(shared_lexicon()), spelled)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.learning", description=__doc__.split("\n")[0])
    p.add_argument("--signers", nargs="+", default=None)
    p.add_argument("--words", type=int, default=200, help="test words read (the most frequent first)")
    p.add_argument("--folds", default=str(ROOT / "instance" / "folds"),
                   help="fold models, DIR/<signer>/best_model.pth, trained there when absent (default: %(default)s, "
                        "shared with `python -m ml.experiments practice --folds`)")
    args = p.parse_args(argv)
    import torch
    from bench.letters import shake_runs
    from ml.calibration import folds
    from ml.config import load_config
    from ml.datasets import SOURCES
    from ml.experiments import SIGNERS
    from bench.words import TRAIN_OPTIONS
    torch.set_num_threads(2)
    config = load_config()
    signers = args.signers or list(SIGNERS)
    lists = word_lists()
    tests = {"words": lists["words"][:args.words], "names": lists["names"]}
    items = lists["fit words"] + lists["fit names"]
    random.Random(SEED).shuffle(items)
    items = items[:AFTER[-1] * 2]  # words the signer lacks a letter of are skipped: enough for 50 spelled
    folds_dir = args.folds
    from ml.datasets import load_dataset
    runs, rows = shake_runs(load_dataset("signademy", config)), []
    for fold in folds(signers, ["--datasets", *SOURCES, *TRAIN_OPTIONS], folds_dir, SEED):
        row = {"signer": fold.signer, "shared": read_tests(fold, fold.model, fold.meta, tests, config, runs)}
        for keep in CONFIRMED:
            for n, m in free_spelling(fold, items, config, runs, keep).items():
                r = read_tests(fold, m["model"], m["meta"], tests, config, runs)
                row[f"{keep} {n}"] = {**{k: v for k, v in m.items() if k not in ("model", "meta")},
                                      "words": r["words"], "names": r["names"]}
        row["shared"] = {k: row["shared"][k] for k in ("words", "names")}
        rows.append(row)
        print(json.dumps(row), flush=True)
    print("\n".join(table(rows)), flush=True)
    return 0


def table(rows: list[dict]) -> list[str]:
    cols = ["shared", *(f"{k} {n}" for k in CONFIRMED for n in AFTER)]
    out = ["| held-out signer | " + " | ".join(f"{c}: words / names" for c in cols) + " |",
           "|" + " --- |" * (len(cols) + 1)]
    for r in rows:
        out.append(f"| {r['signer']} | " + " | ".join(f"{r[c]['words']:.1%} / {r[c]['names']:.1%}" for c in cols)
                   + " |")
    out.append("| mean | " + " | ".join(f"{np.mean([r[c]['words'] for r in rows]):.1%} / "
                                         f"{np.mean([r[c]['names'] for r in rows]):.1%}" for c in cols) + " |")
    return out


if __name__ == "__main__":
    sys.exit(main())
