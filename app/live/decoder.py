"""The word decoder: committed letters, with the model's probabilities -> the word most likely meant. Pure.

Noisy channel. A lexicon word w scores  log P(w) + log P(letters | w),  where P(letters | w) aligns the
committed letters to w: each letter read as w's letter with the model's (smoothed) probability of it, or one
committed letter extra, or up to two letters of w missed. A missed letter is scored by the gap where it would
sit: the frames between two commits where a hand showed but nothing was committed (the speller keeps the model's
probabilities there), so a letter the user signed too briefly or too unsurely still counts, and the longer the
gap the likelier a missed letter (two missed in one gap share its frames). A gap's frames count at the user's pace
(each letter's period, commit to commit): a slow signer's long gap holds no more letters than a quick one's. A
missed letter of a double (HELO for HELLO: the user did not rest) and an extra repeat or a weakly held letter are
likelier than others. The raw spelling scores log P(letters | raw) + max(log P(raw), NAME_LOGPRIOR, a short
spelling's prior): a name is as likely as a rare word, and initials or an abbreviation (OK, TV, ASL) likelier still.
The decoder keeps the raw spelling unless the best word beats it by MARGIN: fingerspelling is mostly names, which
must stay as spelled. An unsure letter (a still hand the model read below the speller's confidence) is the model's
likeliest letter, right far less often than a sure one (docs/EXPERIMENTS.md, "A held letter is never lost"), so
each counts UNSURE against the raw spelling. A session's decoder also learns which of its user's letters the model
misreads, and as what, from the words it settles on (`learn`). SMOOTHING, NAME_LOGPRIOR, MISSED, GAP_MISSED,
GAP_SLOPE, MARGIN, UNSURE, SHORT_LOGPRIOR, SHORT_SLOPE, LEARNED, LEARNED_PRIOR and RESTORED are fitted on held-out
signers' words and names, never the test words (`python -m bench.words --fit`, docs/EXPERIMENTS.md, "Words, not
letters").

The candidates are lexicon words one or two edits from the spelling: those the model's doubts and the gaps point to,
and the likeliest of the 20,000 most frequent words within two edits of any kind (a symmetric-delete index, as
SymSpell's) of the spelling, or of the letters likeliest meant once the session learned its user's misreadings. The
lexicon is symspellpy's English frequency dictionary (82,765 words with counts); a user's own kept spellings rank as
common words for that user. What a decoder learned goes out and comes back whole (`misreadings`, `parse_misreadings`,
`restore_misreadings`): the page keeps it between visits.
"""
from __future__ import annotations

import bisect
import heapq
import math
import threading
from dataclasses import dataclass, field
from importlib import resources

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
LEXICON_FILE = "frequency_dictionary_en_82_765.txt"  # inside the symspellpy package

# Fitted: `python -m bench.words --fit` (the five held-out signers' fit words and names; --names-kept 0.98:
# 98 % of the fit names spelled right stay as spelled: fingerspelling is mostly names).
SMOOTHING = 0.1
NAME_LOGPRIOR = -16.0
# A short spelling (initials, abbreviations, codes, short names: OK, TV, JO, ASL) is one of few strings of its
# length: its log prior is SHORT_LOGPRIOR - SHORT_SLOPE x its length where that is above NAME_LOGPRIOR. Fitted after
# the constants above on bench/short.txt's fit third and the fit words (bench.words --fit, fit_short).
SHORT_LOGPRIOR = 6.0
SHORT_SLOPE = 6.0                # per letter: two letters -6, three -12, four and more NAME_LOGPRIOR
MARGIN = 3.0
MISSED = math.log(0.05)          # a letter of the word never committed, nothing shown for it
GAP_MISSED = math.log(4.0)       # ... shown in a gap: odds against the gap showing no letter (times its probability)
GAP_SLOPE = 1.0                  # ... plus this (log odds) for each frame of the gap beyond GAP_FRAMES
UNSURE = 1.0                     # log units against the raw spelling for each of its unsure letters

# Edit probabilities (log): a committed letter the word lacks is rare (the hold rule), a double's second likely.
EXTRA = math.log(0.005)          # a committed letter the word lacks (13 of 1,820 words, kaggle fold)
EXTRA_SPECIAL = math.log(0.2)    # ... when it was held weakly or repeats the letter before it
MISSED_DOUBLE = math.log(0.3)    # the second of a double letter (the user did not rest)
USER_LOGPRIOR = -7.0             # a kept spelling ranks like a common word (about the 300th)
MAX_USER_WORDS = 1000            # per session: a visitor's state is bounded
# Learned in a session: how often this user's letter c is read as r, from the words the decoder (or the user's
# choice) settled on. A stranger's misreadings are systematic (one signer's T is read as S 64 times in 1,000
# words), so a misreading seen before is likelier again. Fitted after the constants above (bench.words --fit).
LEARNED = 2.0                    # weight of the learned misreading rate in the channel
LEARNED_PRIOR = 20.0             # letters of c seen before its learned rate counts in full (shrinkage)
MAX_COUNT = 1_000_000            # a count taken from an earlier visit (the page sends them back): bounded
# Fitted (docs/EXPERIMENTS.md, "A returning user"): the most a returning user keeps while the next user of the same
# browser loses at most half a point against a fresh start.
RESTORED = 5                     # an earlier visit's letters count as at most this many of each
SUGGESTIONS = 3
DOUBT = math.log(0.02)           # a letter the model gave this much (smoothed) is a candidate substitution
GAP_FRAMES = 3                   # frames that committed nothing before a gap can show a missed letter
GAP_LONG = 15                    # frames (1 s at 15 fps) beyond which a longer gap says no more
PACE = 14                        # frames from one commit to the next: the slower bench words' (90th percentile)
GAP_TOP = 3                      # a gap's likeliest letters tried as missed letters
NEAR_WORDS = 20000               # the most frequent words, indexed for any two edits of a spelling (~60 MB)
NEAR_PREFIX = 7                  # ... by the deletes of their first letters only (SymSpell's prefix, its memory)
NEAR_TOP = 20                    # ... the most frequent of them scored (the channel's cost is per candidate)


def deletes(text: str, n: int = 2) -> set[str]:
    """`text` with up to `n` of its letters deleted (itself included)."""
    out = frontier = {text}
    for _ in range(n):
        frontier = {x[:i] + x[i + 1:] for x in frontier for i in range(len(x))}
        out = out | frontier
    return out


def parse_misreadings(learned: object) -> tuple[dict[str, int], dict[tuple[str, str], int]]:
    """`Decoder.misreadings`' form, as a page sends it back -> (meant, misread); ValueError for anything else: at
    most 26 letters and 650 pairs, each count 0..MAX_COUNT, a letter read as another no more often than meant."""
    def counts(value, keys):
        ok = isinstance(value, dict) and len(value) <= len(keys) and all(
            k in keys and type(n) is int and 0 <= n <= MAX_COUNT for k, n in value.items())
        return value if ok else None

    pairs = {c + r for c in LETTERS for r in LETTERS if c != r}
    meant = counts(learned.get("meant"), set(LETTERS)) if isinstance(learned, dict) else None
    misread = counts(learned.get("misread"), pairs) if isinstance(learned, dict) else None
    if meant is None or misread is None or any(n > meant.get(k[0], 0) for k, n in misread.items()):
        raise ValueError('misreadings take {"meant": {letter: count}, "misread": {letter pair: count}}: A-Z, '
                         f"counts 0 to {MAX_COUNT}, a pair's no more than its first letter's")
    return dict(meant), {(k[0], k[1]): n for k, n in misread.items()}


def mean(vectors: list) -> list[float] | None:
    """The element-wise mean of probability vectors (None for none)."""
    return [sum(column) / len(vectors) for column in zip(*vectors)] if vectors else None


@dataclass(frozen=True)
class Gap:
    """Frames with a hand between two committed letters that committed nothing: where a missed letter shows."""
    probs: list[float]        # the model's mean probabilities of A-Z (LETTERS order) over those frames
    frames: int

    @classmethod
    def of(cls, vectors: list) -> "Gap | None":
        return cls(mean(vectors), len(vectors)) if vectors else None


@dataclass(frozen=True)
class Letter:
    """One committed letter and what the speller saw of it."""
    label: str
    probs: object = None      # the model's mean probabilities of A-Z (LETTERS order) while the letter was held
    weak: bool = False        # the hold barely passed the confidence threshold
    repeat: bool = False      # the same letter again after a rest (a double letter)
    corrected: bool = False   # signed right after a delete: the user chose it
    gap: Gap | None = None    # what was shown between the letter before and this one
    period: int = 0           # frames with a hand from the letter before's commit to this one's (0: unknown)
    unsure: bool = False      # committed for a still hand the model read below the speller's confidence


@dataclass
class Decoded:
    value: str                # the word decided on
    raw: str                  # the spelling as committed
    alternatives: list[str] = field(default_factory=list)  # other likely words, best first

    def event(self) -> dict:
        return {"type": "word", "value": self.value, "raw": self.raw, "alternatives": self.alternatives}


class Lexicon:
    """Words (upper case) with log prior probabilities, and the most likely words for each short prefix."""

    def __init__(self, counts: dict[str, int]):
        total = sum(counts.values())
        self.logprior = {w: math.log(c / total) for w, c in counts.items()}
        self.sorted = sorted(self.logprior)
        best: dict[str, list] = {}
        for w, lp in self.logprior.items():
            for k in range(1, min(3, len(w)) + 1):
                heap = best.setdefault(w[:k], [])
                (heapq.heappush if len(heap) < SUGGESTIONS else heapq.heappushpop)(heap, (lp, w))
        self._top = {p: [w for _, w in sorted(h, reverse=True)] for p, h in best.items()}
        # SymSpell's symmetric deletes: a word within two edits of a spelling shares a delete of its prefix
        # with it. Its own lookup verifies each match's edit distance, which takes 1-4 ms a word; the channel
        # scores the matches instead, so only the likeliest are kept.
        near: dict[str, list[str]] = {}
        for w in sorted(self.logprior, key=self.logprior.get, reverse=True)[:NEAR_WORDS]:
            for d in deletes(w[:NEAR_PREFIX]):
                near.setdefault(d, []).append(w)
        self._near = {d: tuple(ws) for d, ws in near.items()}

    @classmethod
    def load(cls) -> "Lexicon":
        counts = {}
        with resources.files("symspellpy").joinpath(LEXICON_FILE).open(encoding="utf-8") as f:
            for line in f:
                word, count = line.split()
                if word.isalpha() and word.isascii():
                    counts[word.upper()] = int(count)
        return cls(counts)

    def near(self, spelling: str) -> list[str]:
        """Up to NEAR_TOP of the NEAR_WORDS most frequent words within about two edits of `spelling` (one
        letter shorter to two longer: the channel's alignments), likeliest first."""
        found = set()
        for d in deletes(spelling[:NEAR_PREFIX]):
            found.update(self._near.get(d, ()))
        found = [w for w in found if len(spelling) - 1 <= len(w) <= len(spelling) + 2]
        return heapq.nlargest(NEAR_TOP, found, key=self.logprior.__getitem__)

    def completions(self, prefix: str) -> list[str]:
        """The SUGGESTIONS most likely words starting with `prefix` (the prefix itself included)."""
        if len(prefix) <= 3:
            return self._top.get(prefix, [])
        lo = bisect.bisect_left(self.sorted, prefix)
        hi = bisect.bisect_left(self.sorted, prefix + "\x7f", lo)
        return heapq.nlargest(SUGGESTIONS, self.sorted[lo:hi], key=self.logprior.__getitem__)


_shared: Lexicon | None = None
_shared_lock = threading.Lock()


def shared_lexicon() -> Lexicon:
    """One lexicon per process (~1 s to load, ~75 MB with its near-word index), shared by every session's decoder
    (read-only)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = Lexicon.load()
        return _shared


def letter_probs(probs, classes: list[str]) -> list[float]:
    """The model's probabilities of A-Z, in LETTERS order, from its probabilities over `classes`."""
    return [float(probs[classes.index(c)]) if c in classes else 0.0 for c in LETTERS]


class Decoder:
    """One user's decoder: the shared lexicon plus that user's kept spellings and the misreadings of their letters
    learned from their words."""

    def __init__(self, lexicon: Lexicon, smoothing: float = SMOOTHING, name_logprior: float = NAME_LOGPRIOR,
                 margin: float = MARGIN, missed: float = MISSED, gap_missed: float = GAP_MISSED,
                 gap_slope: float = GAP_SLOPE, learned: float = LEARNED, learned_prior: float = LEARNED_PRIOR,
                 restored: float = RESTORED, short_logprior: float = SHORT_LOGPRIOR,
                 short_slope: float = SHORT_SLOPE, unsure: float = UNSURE):
        self.lexicon = lexicon
        self.letters = LETTERS
        self.smoothing, self.name_logprior, self.margin, self.missed = smoothing, name_logprior, margin, missed
        self.gap_missed, self.gap_slope = gap_missed, gap_slope
        self.learned, self.learned_prior, self.restored = learned, learned_prior, restored
        self.short_logprior, self.short_slope = short_logprior, short_slope
        self.unsure = unsure
        self.user_words: dict[str, None] = {}  # insertion order: the oldest is dropped first
        # This user's letters: how many times c was meant, and read as r (r != c); 26 x 26 at most.
        self.meant: dict[str, int] = {}
        self.misread: dict[tuple[str, str], int] = {}

    def remember(self, word: str) -> None:
        """A spelling the user kept: ranked up from now on."""
        self.user_words.pop(word, None)
        self.user_words[word] = None
        while len(self.user_words) > MAX_USER_WORDS:
            del self.user_words[next(iter(self.user_words))]

    def learn(self, meant: str, read: str, weight: int = 1) -> None:
        """The user meant `meant` where the letters read `read`: count each letter meant and each misread, letter
        by letter. Where one letter was missed or extra, the alignment with the fewest misreads, if only one is;
        otherwise nothing is learned. weight -1 takes it back."""
        if len(meant) == len(read) + 1:
            pairs = {(meant[:k] + meant[k + 1:], read) for k in range(len(meant))}
        elif len(meant) + 1 == len(read):
            pairs = {(meant, read[:k] + read[k + 1:]) for k in range(len(read))}
        else:
            pairs = {(meant, read)} if len(meant) == len(read) else set()
        misreads = {p: sum(c != r for c, r in zip(*p)) for p in pairs}
        best = [p for p in pairs if misreads[p] == min(misreads.values())]
        if len(best) != 1:
            return
        for c, r in zip(*best[0]):  # never below zero: a lesson taken back after forget_misreadings
            self.meant[c] = max(0, self.meant.get(c, 0) + weight)
            if c != r:
                self.misread[(c, r)] = max(0, self.misread.get((c, r), 0) + weight)

    def misreadings(self) -> dict:
        """What was learned of this user's letters, as the page keeps it between visits (`restore_misreadings`):
        {"meant": {letter: count}, "misread": {meant + read: count}}, zero counts left out. A pair is given no
        more than its letter: a lesson taken back after forget_misreadings can leave it above (both stop at 0)."""
        return {"meant": {c: n for c, n in sorted(self.meant.items()) if n},
                "misread": {c + r: min(n, self.meant.get(c, 0)) for (c, r), n in sorted(self.misread.items())
                            if min(n, self.meant.get(c, 0))}}

    def restore_misreadings(self, meant: dict[str, int], misread: dict[tuple[str, str], int]) -> None:
        """Take up what earlier visits learned (`parse_misreadings`) in place of what this one has, each letter
        counted as at most `restored` (RESTORED) times meant (its misreadings scaled alike): the rates come back, not the weight
        of every visit before, so a user whose signing changed, or another user of the same browser, outweighs
        them within a few words."""
        scale = {c: min(1.0, self.restored / n) for c, n in meant.items() if n}
        self.meant = {c: round(n * scale[c]) for c, n in meant.items() if n}
        self.misread = {(c, r): min(round(n * scale[c]), self.meant[c]) for (c, r), n in misread.items()
                        if n and c in scale}

    def forget_misreadings(self) -> None:
        """The model reading this user changed (a personal model, or the shared one again): what was learned of
        the old one's misreadings no longer holds. The kept spellings are the user's, and stay."""
        self.meant.clear()
        self.misread.clear()

    def logprior(self, word: str) -> float | None:
        lp = self.lexicon.logprior.get(word)
        if word in self.user_words:
            return max(lp or USER_LOGPRIOR, USER_LOGPRIOR)
        return lp

    def _table(self, letters: list[Letter]) -> list[dict[str, float]]:
        """Per committed letter: log P(read as this | meant letter) for every letter, smoothed."""
        table = []
        for x in letters:
            # A letter signed again after a delete is what the user meant, whatever the model's doubts.
            eps = self.smoothing / 10 if x.corrected else self.smoothing
            if x.probs is None or x.corrected:
                p = [1.0 if c == x.label else 0.0 for c in self.letters]
            else:
                p = [float(v) for v in x.probs]
            total = sum(p) or 1.0
            row = [(1 - eps) * v / total + eps / len(p) for v in p]
            if not x.corrected:  # a misreading this user's letter c was seen to have (this letter read as x)
                for i, c in enumerate(self.letters):
                    if (c, x.label) in self.misread:
                        row[i] += self.learned * self.misread[(c, x.label)] / (self.meant[c] + self.learned_prior)
            table.append({c: math.log(v) for c, v in zip(self.letters, row)})
        return table

    def _gaps(self, letters: list[Letter], tail: Gap | None) -> list[tuple[dict, dict] | None]:
        """Per gap (before each committed letter, then after the last): log P(a missed letter c shows there) for
        every letter, alone and when two missed letters share the gap's frames; None where too few frames
        committed nothing to show one."""
        out = []
        # A slow signer's gaps are long without a letter more in them: frames count at the pace fitted at.
        periods = sorted(x.period for x in letters if x.period)
        pace = min(1.0, PACE / periods[len(periods) // 2]) if periods else 1.0
        for g in [x.gap for x in letters] + [tail]:
            frames = g.frames * pace if g is not None else 0
            if frames < GAP_FRAMES:
                out.append(None)
                continue
            # Not normalised over the letters: frames the model gave to `nothing` show no letter.
            eps = self.smoothing
            shown = {c: math.log((1 - eps) * v + eps / len(g.probs)) for c, v in zip(self.letters, g.probs)}
            out.append(tuple({c: odds + lp for c, lp in shown.items()}
                             for odds in (self._odds(frames), self._odds(frames / 2))))
        return out

    def _odds(self, frames: float) -> float:
        """log odds that a gap of `frames` shows a missed letter: the longer a hand showed without a commit,
        the likelier a letter was missed there."""
        return self.gap_missed + self.gap_slope * (min(frames, GAP_LONG) - GAP_FRAMES)

    def _missed(self, gaps: list, j: int, word: str, k: int, shared: bool = False) -> float:
        """log P(the word's letter k was never committed), in gap j (j committed letters before it), whose
        frames another missed letter may share."""
        cost = self.missed
        if k and word[k] == word[k - 1]:
            cost = max(cost, MISSED_DOUBLE)
        if gaps[j] is not None:
            cost = max(cost, gaps[j][shared][word[k]])
        return cost

    def channel(self, table: list[dict], letters: list[Letter], word: str, gaps: list | None = None) -> float:
        """log P(committed letters | word), the best alignment with at most one committed letter extra or up to
        two letters of the word missed (found in the gaps where the speller committed nothing)."""
        n, m = len(table), len(word)
        gaps = gaps or [None] * (n + 1)
        if m == n:
            return sum(row.get(c, -30.0) for row, c in zip(table, word))
        if not n - 1 <= m <= n + 2:
            return -math.inf

        def reads(shift):
            """Running sums: [i] = the word's first i letters, letter j read by committed letter j - shift
            (each alignment below is three runs of these: linear per word, not cubic)."""
            out = [0.0]
            for j, c in enumerate(word):
                out.append(out[-1] + (table[j - shift].get(c, -30.0) if 0 <= j - shift < n else 0.0))
            return out

        same, after_one = reads(0), reads(1)
        if m == n + 1:  # the word's letter k missed, in gap k
            return max(self._missed(gaps, k, word, k) + same[k] + after_one[m] - after_one[k + 1] for k in range(m))
        if m == n + 2:  # letters k1 < k2 missed, in gaps k1 and k2 - 1
            after_two = reads(2)
            return max(self._missed(gaps, k1, word, k1, k1 == k2 - 1)
                       + self._missed(gaps, k2 - 1, word, k2, k1 == k2 - 1)
                       + same[k1] + after_one[k2] - after_one[k1 + 1] + after_two[m] - after_two[k2 + 1]
                       for k2 in range(1, m) for k1 in range(k2))
        # m == n - 1: one committed letter extra, at k
        before_one = reads(-1)
        return max((EXTRA_SPECIAL if letters[k].weak or letters[k].repeat else EXTRA) + same[k]
                   + before_one[m] - before_one[k] for k in range(n))

    def candidates(self, table: list[dict], raw: str, gaps: list | None = None) -> set[str]:
        """Lexicon (and user) words one edit from the raw spelling; or two substitutions by letters the model
        gave at least DOUBT; or up to two missed letters, each one its gap's likeliest or a double, with at
        most one such substitution; and the NEAR_TOP most frequent words two edits of any kind away from the spelling,
        and from the letters likeliest meant when they differ."""
        edits = set()
        for k in range(len(raw) + 1):
            head, tail = raw[:k], raw[k:]
            edits.update([head + c + tail for c in self.letters])
            if tail:
                edits.add(head + tail[1:])
                edits.update([head + c + tail[1:] for c in self.letters])
        doubts = [(i, c) for i, row in enumerate(table) for c, lp in row.items() if lp >= DOUBT and c != raw[i]]
        for a, (i, x) in enumerate(doubts):
            for j, y in doubts[a + 1:]:
                if j > i:
                    edits.add(raw[:i] + x + raw[i + 1:j] + y + raw[j + 1:])
        # Missed letters: per gap, its GAP_TOP likeliest letters and the letter before (a double).
        inserts = []
        for j, g in enumerate(gaps or []):
            options = sorted(g[0], key=g[0].get, reverse=True)[:GAP_TOP] if g is not None else []
            if j and raw[j - 1] not in options:
                options.append(raw[j - 1])
            inserts += [(j, c) for c in options]
        variants = [raw] + [raw[:i] + x + raw[i + 1:] for i, x in doubts]
        for j1, c1 in inserts:
            for v in variants:
                edits.add(v[:j1] + c1 + v[j1:])
            for j2, c2 in inserts:  # two in one gap: both orders
                if j2 >= j1:
                    edits.add(raw[:j1] + c1 + raw[j1:j2] + c2 + raw[j2:])
        edits.discard(raw)
        found = (self.lexicon.logprior.keys() & edits) | (self.user_words.keys() & edits)
        near = set(self.lexicon.near(raw))
        # What this user's letters likeliest meant, once learned misreadings make another letter the likeliest
        # (a stranger whose P is always read as X): two more edits can be counted from there.
        likeliest = "".join(max(row, key=row.get) for row in table)
        if likeliest != raw:
            near |= set(self.lexicon.near(likeliest))
        return found | (near - {raw})

    def rank(self, letters: list[Letter], tail: Gap | None = None) -> tuple[list[tuple[float, str]], float]:
        """(candidate words with their scores, best first; the raw spelling's score)."""
        raw = "".join(x.label for x in letters)
        table, gaps = self._table(letters), self._gaps(letters, tail)
        scored = sorted(((self.logprior(w) + self.channel(table, letters, w, gaps), w)
                         for w in self.candidates(table, raw, gaps)), reverse=True)
        raw_prior = max(self.logprior(raw) or -math.inf, self.name_logprior,
                        self.short_logprior - len(raw) * self.short_slope)
        doubted = self.unsure * sum(x.unsure for x in letters)
        return scored, self.channel(table, letters, raw, gaps) + raw_prior - doubted

    def decode(self, letters: list[Letter], tail: Gap | None = None) -> Decoded:
        """The word meant by the committed `letters` (with the gap after the last, `tail`)."""
        raw = "".join(x.label for x in letters)
        if not raw:
            return Decoded("", "")
        scored, raw_score = self.rank(letters, tail)
        value = scored[0][1] if scored and scored[0][0] - raw_score > self.margin else raw
        return Decoded(value, raw, [w for _, w in scored if w != value][:SUGGESTIONS])

    def suggest(self, letters: list[Letter]) -> list[str]:
        """Up to three words the growing word may become: completions of its spelling, or of the spelling
        with one letter read as the model's second guess."""
        if not letters:
            return []
        table = self._table(letters)
        raw = "".join(x.label for x in letters)
        prefixes = {raw: 0.0}
        for i, row in enumerate(table):
            for c in sorted(row, key=row.get, reverse=True)[:2]:
                if c != raw[i]:
                    prefixes[raw[:i] + c + raw[i + 1:]] = row[c] - row[raw[i]]
        scored = {}
        for prefix, cost in prefixes.items():
            for w in self.lexicon.completions(prefix) + [u for u in self.user_words if u.startswith(prefix)]:
                score = self.logprior(w) + cost
                if score > scored.get(w, -math.inf):
                    scored[w] = score
        return sorted(scored, key=scored.get, reverse=True)[:SUGGESTIONS]
