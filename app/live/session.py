"""Per-client live state and the per-frame pipeline: frame -> landmarks -> features -> window -> model -> speller.

A Session owns its client's MediaPipe tracker (tracking mode: a steady hand skips palm detection), the
rolling window of feature vectors and the speller. A tracker is neither thread-safe nor shareable (its
tracking state is one video's), so each session's frames are processed one at a time under its lock.
Everything here blocks (MediaPipe, waiting for the model): the Socket.IO layer calls it off its event loop.
"""
from __future__ import annotations

import threading
import time
from collections import deque

import numpy as np
from flask import current_app, request

from app.live.blocking import native
from app.live.decoder import Decoded, Decoder, letter_probs, parse_misreadings, shared_lexicon
from app.live.frames import FrameError, decode_frame
from app.live.landmark_frames import LandmarkFrame
from app.live.speech import SpeechQueue
from app.live.speller import MAX_WORD, REST, Speller
from ml.features import hand_features
from ml.inference import PersonalModel, Predictor
from ml.landmarks import Hand, HandTracker, tracker_settings

TOP_K = 3
MAX_KEPT_WORDS = 200  # a returning user's kept spellings taken on connect (static/js/words.js keeps as many)
MODEL_TIMEOUT_S = 10  # a stuck model fails the frame with an error instead of holding the client forever


class TrackerPool:
    """Idle tracking-mode trackers, reset and handed to the next client. Closing a MediaPipe graph did not
    give its memory back in the server (RSS grew ~40 MB with every connection, measured), so a graph is made
    only when every idle one is in use: the pool grows to the most clients seen at once, and no further than
    `max_trackers` (`landmarks.max_trackers`): past that a client's frames are refused with server_full until
    another leaves, so visitors, however many connect, cannot run the server out of memory."""

    def __init__(self, landmarks_config: dict):
        self.landmarks_config = landmarks_config
        self.max_trackers = int(landmarks_config["max_trackers"])
        self._idle: list[HandTracker] = []
        self._made = 0
        self._lock = threading.Lock()

    def acquire(self) -> HandTracker:
        with self._lock:
            if self._idle:
                return self._idle.pop()
            if self._made >= self.max_trackers:
                raise FrameError("server_full", f"this server already reads {self.max_trackers} people at once; "
                                                "your frames are read as soon as one of them leaves")
            self._made += 1
        try:
            import mediapipe  # noqa: F401  here, not on a native thread: its import runs ldconfig, which gevent's
            # subprocess can only watch from the loop's own thread
            return native(lambda: HandTracker(static=False, **tracker_settings(self.landmarks_config)))
        except BaseException:
            with self._lock:
                self._made -= 1
            raise

    @property
    def in_use(self) -> int:
        """Trackers held by clients now: the people being read."""
        with self._lock:
            return self._made - len(self._idle)

    def release(self, tracker: HandTracker) -> None:
        tracker.reset()
        with self._lock:
            self._idle.append(tracker)


class TrackerLease:
    """One client's tracker from the pool: taken on its first decodable frame (a MediaPipe graph costs ~80 MB, so
    a connection that never sends one, an idle tab or a fuzzer, costs none) and given back once. Not thread-safe:
    its owner holds its own lock around `process` and `release`."""

    def __init__(self, pool: TrackerPool):
        self.pool = pool
        self.tracker: HandTracker | None = None

    def process(self, image):
        if self.tracker is None:
            self.tracker = self.pool.acquire()
        return native(self.tracker.process, image)

    def release(self) -> None:
        if self.tracker is not None:
            self.pool.release(self.tracker)
            self.tracker = None


class RateLimiter:
    """Token bucket: `rate` frames a second on average, bursts up to one second's worth."""

    def __init__(self, rate: float, clock=time.monotonic):
        self.rate = float(rate)
        self.clock = clock
        self.tokens = self.rate
        self.last = clock()
        self._lock = threading.Lock()  # a client's two in-flight frames may ask at once

    def allow(self) -> bool:
        with self._lock:
            now = self.clock()
            self.tokens = min(self.rate, self.tokens + (now - self.last) * self.rate)
            self.last = now
            if self.tokens < 1:
                return False
            self.tokens -= 1
            return True

    def admit(self) -> None:
        """Count a frame when it arrives, before it queues for a worker; FrameError rate_limited over the rate.
        (Counted when a worker took it, a burst passed whole whenever the machine drained it slower than the
        rate: the limit depended on the load.)"""
        if not self.allow():
            raise FrameError("rate_limited", f"more than {self.rate:g} frames a second; frame dropped")


class Session:
    def __init__(self, config: dict, trackers: TrackerPool):
        self.tracker = TrackerLease(trackers)
        self.speller = Speller(**config["speller"])
        self.frames_config = config["frames"]
        self.rate = RateLimiter(config["frames"]["max_fps"])
        self.window: deque[np.ndarray] = deque()
        self.lock = threading.Lock()
        self.closed = False
        # The user's own samples (app.live.learning): their personal model and key, the labelled frames gathered
        # (calibration, practice, confirmed words) and what gathers them now.
        self.personal: PersonalModel | None = None
        self.personal_key: str | None = None
        self.gathered = None  # app.live.learning.Gathered, from the first calibration take or practice word
        self.calibration = None  # app.live.calibration.Recorder while this client calibrates
        self.practice = None  # app.live.practice.Practice while this client practises
        self.spelling = None  # app.live.confirmed.ConfirmedWords while its free spelling teaches (on by default)
        # Words (app.live.decoder): the finished word's decoding and the growing word's suggestions.
        self._decoder: Decoder | None = None  # made on first use: it waits for the shared lexicon
        self.suggestions: list[str] = []  # for the current word
        self.finished: Decoded | None = None  # the last finished word, while `choose` may replace it
        self.to_speak = SpeechQueue()  # words and text waiting for server speech (app.live.realtime)
        self.version = 0  # of the state last answered (`state`)

    def use_personal(self, key: str | None, personal: PersonalModel | None) -> None:
        """Read with `personal` (None: the shared model) from the next frame on; the window starts afresh, and the
        decoder learns the new model's misreadings afresh."""
        with self.lock:
            if personal is not self.personal and self._decoder is not None:
                self._decoder.forget_misreadings()
            self.personal_key, self.personal = key, personal
            self.window.clear()

    def forget_words(self) -> None:
        """"Forget me": what the decoder learned of this user (kept spellings, misreadings) goes too."""
        with self.lock:
            self._decoder = None

    # A returning user: the page keeps what the decoder learned of them (their kept spellings, their letters'
    # misreadings) in its browser and sends it on connect; the server stores none of it. Both make the decoder
    # (waiting for the shared lexicon while the server starts): call them off the event loop.
    def restore_words(self, words: object) -> None:
        """Connect's auth {"words"}: the spellings this user kept on earlier visits, ranked up again. FrameError,
        and none taken, for a malformed list."""
        if not (isinstance(words, list) and len(words) <= MAX_KEPT_WORDS and all(
                isinstance(w, str) and 0 < len(w) <= MAX_WORD and w.isascii() and w.isalpha() and w.isupper()
                for w in words)):
            raise FrameError("bad_words", f"words takes a list of at most {MAX_KEPT_WORDS} spellings, "
                                          f"each 1 to {MAX_WORD} letters A-Z")
        with self.lock:
            for word in words:
                self.decoder.remember(word)

    def restore_misreadings(self, learned: object, shared_model: str) -> None:
        """Connect's auth {"misreadings"}: the last `misreadings` event of an earlier visit, taken up when it was
        learned of the model reading this user now (one model's misreadings are not another's; this call comes
        after the personal key's). FrameError, and nothing taken, for a malformed one."""
        try:
            if not (isinstance(learned, dict) and isinstance(learned.get("model"), str)):
                raise ValueError('misreadings take {"model", "meant", "misread"}')
            meant, misread = parse_misreadings(learned)
        except ValueError as exc:
            raise FrameError("bad_misreadings", str(exc)) from None
        with self.lock:
            if learned["model"] == self.model_name(shared_model):
                self.decoder.restore_misreadings(meant, misread)

    def misreadings(self, shared_model: str) -> dict | None:
        """What the decoder learned of this user's letters, for the page to keep ({"model", "meant", "misread"});
        None before it learned anything."""
        with self.lock:
            if self._decoder is None:
                return None
            return {"model": self.model_name(shared_model), **self._decoder.misreadings()}

    def model_name(self, shared_model: str) -> str:
        """What reads this user, as a `result` names it: "personal", or the shared model's id."""
        return "personal" if self.personal else shared_model

    def state(self, events: list[dict] | None = None) -> dict:
        """The transcript now (the caller holds the lock), numbered: the page never shows a state older than one it
        has shown, whatever order a client's replies arrive in."""
        self.version += 1
        return {"word": self.speller.word, "text": self.speller.text, "events": events or [],
                "version": self.version}

    def process(self, data: bytes | LandmarkFrame, predictor: Predictor, seq: int | None = None) -> dict:
        """One frame -> the `result` payload (the caller has checked `rate`): image bytes, read by this session's
        tracker, or the hand the page's own tracker found (no tracker taken here). FrameError for a bad frame."""
        timings = {}
        t0 = time.perf_counter()
        image = None if isinstance(data, LandmarkFrame) else decode_frame(
            data, self.frames_config["max_bytes"], self.frames_config["max_pixels"])
        t1 = time.perf_counter()
        timings["decode"] = t1 - t0
        with self.lock:
            if self.closed:
                raise FrameError("closed", "the session has ended")
            hand = data.hand if image is None else self.tracker.process(image)
            t2 = time.perf_counter()
            timings["landmarks"] = t2 - t1
            aspect = data.aspect if image is None else image.shape[1] / image.shape[0]
            if hand is not None and self.calibration is not None:
                self.calibration.add(hand, aspect)
            (reading,) = self.read([(hand, aspect)], predictor, timings)
            letter, confidence, top, events = (reading[k] for k in ("letter", "confidence", "top", "events"))
            # Rounded as float64: a float32 rounded to 4 places still prints 17 digits (0.4316999912261963), which
            # made the landmarks ~1,200 of a result's ~1,700 bytes of JSON, encoded and sent 15 times a second.
            points = None if hand is None else np.round(hand.landmarks.astype(np.float64), 4).tolist()
            result = {"seq": seq, "hand": hand is not None, "letter": letter, "confidence": confidence,
                      "top": top, "landmarks": points,
                      **self.state(events), "suggestions": self.suggestions,
                      "model": self.model_name(predictor.model_id)}
            if self.calibration is not None:
                result["calibration"] = self.calibration.status()
        timings["total"] = time.perf_counter() - t0
        result["timings_ms"] = {k: round(v * 1000, 3) for k, v in timings.items()}
        return result

    def read(self, frames: list[tuple[Hand | None, float]], predictor: Predictor,
             timings: dict | None = None) -> list[dict]:
        """The pipeline after the tracker, for frames in order, each (its hand or None, its width / height): features
        -> window -> model -> speller -> word decoder. Live frames come one at a time, a video's many at once: the
        windows of all its frames with a hand wait for the model together (the predictor's one worker batches them,
        with every other client's waiting now), then the speller takes the frames in order. Each frame's reading:
        {"letter", "confidence", "top", "events"}. The caller holds the lock."""
        t0 = time.perf_counter()
        reader = self.personal or predictor
        windows = []
        for hand, aspect in frames:
            if hand is None:
                # No hand, no model call: the hand is at rest, and a new sign starts a new window.
                self.window.clear()
                windows.append(None)
                continue
            self.window.append(hand_features(hand.landmarks, aspect=aspect, is_left=hand.is_left))
            while len(self.window) > reader.window:
                self.window.popleft()
            windows.append(np.stack(self.window))
        t1 = time.perf_counter()
        futures = [None if w is None else predictor.submit(w, self.personal) for w in windows]
        probs = [None if f is None else f.result(timeout=MODEL_TIMEOUT_S) for f in futures]
        t2 = time.perf_counter()
        readings = []
        features = [None if w is None else w[-1] for w in windows]  # the speller sees the hand settle and move
        for p, hand_now, (hand, aspect) in zip(probs, features, frames):
            if p is None:
                letter, confidence, top, letters = REST, 1.0, [[REST, 1.0]], None
            else:
                classes = reader.classes
                order = np.argsort(p)[::-1][:TOP_K]
                top = [[classes[i], round(float(p[i]), 4)] for i in order]
                letter, confidence = top[0]
                letters = letter_probs(p, classes)
            # Calibrating, the user signs every class on request: nothing they show is typed (nor spoken, nor deleted).
            calibrating = self.calibration is not None and self.calibration.active
            if self.practice is not None:
                self.practice.frame(hand, aspect, letter)
            elif self.spelling is not None and not calibrating:
                self.spelling.frame(hand, aspect, letter)
            events = [] if calibrating else self.decode_words(
                self.speller.update(letter, confidence, letters, hand_now))
            readings.append({"letter": letter, "confidence": confidence, "top": top, "events": events})
        if timings is not None:
            with_hand = any(w is not None for w in windows)  # no hand: no features, no model call
            timings["features"] = t1 - t0 if with_hand else 0.0
            timings["inference"] = t2 - t1 if with_hand else 0.0
            timings["speller"] = time.perf_counter() - t2
        return readings

    def undo(self) -> dict:
        """Restore the raw spelling of a word the decoder changed; else delete the last character."""
        with self.lock:
            if self._replaceable() and self.finished.value != self.finished.raw:
                self.decoder.remember(self.finished.raw)
                if self.spelling is not None:
                    self.spelling.undone()
                return self.state(self._replace(self.finished.raw))
            return self.state(self.decode_words(self.speller.undo()))

    def reset(self) -> dict:
        with self.lock:
            self.window.clear()
            return self.state(self.decode_words(self.speller.reset()))

    # Words: the decoder, suggestions, the keyboard's space and the user's choice.

    @property
    def decoder(self) -> Decoder:
        if self._decoder is None:
            self._decoder = Decoder(shared_lexicon())
        return self._decoder

    def decode_words(self, events: list[dict]) -> list[dict]:
        """Decode each finished word (the `word` event gets value, raw and alternatives; the text the decoded
        word); refresh the suggestions when the current word changed."""
        out = []
        for event in events:
            event = self._taught(event)
            if event["type"] == "word":
                self.finished = self.decoder.decode(self.speller.finished, self.speller.finished_tail)
                self.decoder.learn(self.finished.value, self.finished.raw)
                self.speller.replace_finished(self.finished.value)
                event = self._taught(self.finished.event())
            elif event["type"] == "clear":
                self.finished = None
                if self.spelling is not None:
                    self.spelling.clear()  # (practising too: the word waiting for confirmation is gone)
            elif event["type"] == "del" and self.finished is not None and not self.speller.finished:
                # The space was deleted (the speller let go of the finished word's evidence): the word is being
                # spelled again, so its lesson is taken back; it teaches once more, as finally spelled, when it ends.
                self.decoder.learn(self.finished.value, self.finished.raw, weight=-1)
                self.finished = None
                if self.spelling is not None:
                    self.spelling.undone()
            out.append(event)
        if events:
            self.suggestions = self.decoder.suggest(self.speller.letters)
        return out

    def space(self) -> dict:
        """The keyboard's Space: end the word as the `space` sign does."""
        with self.lock:
            return self.state(self.decode_words(self.speller.finish_word()))

    def choose(self, choice) -> dict:
        """{"index": i}: suggestion i ends the current word, or, with no word in progress, alternative i replaces
        the last finished word; {"raw": true}: the spelling as signed. FrameError when there is nothing to
        choose or the choice is malformed."""
        if not (isinstance(choice, dict) and (choice.get("raw") is True or type(choice.get("index")) is int)):
            raise FrameError("bad_choice", 'choose takes {"index": i} or {"raw": true}')
        with self.lock:
            if self.speller.word:
                options, raw = self.suggestions, self.speller.word
            elif self._replaceable():
                options, raw = self.finished.alternatives, self.finished.raw
            else:
                raise FrameError("nothing_to_choose", "there is no word to choose for")
            index = choice.get("index")
            if choice.get("raw") is not True and not 0 <= index < len(options):
                raise FrameError("bad_choice", f"index {index} is not among the {len(options)} choices")
            word = raw if choice.get("raw") is True else options[index]
            self.decoder.remember(word)
            if not self.speller.word:
                events = self._replace(word)
                if self.spelling is not None:
                    self.spelling.replaced(word)
                return self.state(events)
            # End the current word with the choice in its place.
            events = [self._taught(e) for e in self.speller.finish_word() if e["type"] != "word"]
            self.finished = Decoded(word, raw, [w for w in options if w not in (word, raw)])
            self.decoder.learn(word, raw)
            self.speller.replace_finished(word)
            self.suggestions = []
            return self.state(events + [self._taught(self.finished.event(), chosen=True)])

    def _taught(self, event: dict, chosen: bool = False) -> dict:
        """What a word teaches (app.live.learning): the speller's letters and deletes are followed, and a finished
        word (its decoded event, with "raw"; `chosen` by the user) becomes this user's samples: practising
        (app.live.practice) as the word asked for, its event gaining its score; spelling freely
        (app.live.confirmed) once confirmed."""
        if self.practice is None:
            if self.spelling is not None:
                if event["type"] != "word":
                    self.spelling.event(event)
                elif "raw" in event:
                    self.spelling.finished(event["raw"], event["value"], chosen)
            return event
        if event["type"] != "word":
            self.practice.event(event)
        elif "raw" in event:
            score = self.practice.finish(event["raw"], self.gathered)
            if score is not None:
                return {**event, "practice": score}
        return event

    def _replaceable(self) -> bool:
        """The last finished word is still the end of the text (nothing signed after it)."""
        return self.finished is not None and self.speller.text.endswith(self.finished.value + " ")

    def _replace(self, word: str) -> list[dict]:
        old = self.finished
        others = [w for w in [old.value, *old.alternatives] if w not in (word, old.raw)]
        self.decoder.learn(old.value, old.raw, weight=-1)  # the user's choice is what was meant, not the decoder's
        self.decoder.learn(word, old.raw)
        self.finished = Decoded(word, old.raw, others)
        self.speller.replace_finished(word)
        return [{"type": "replace", **{k: v for k, v in self.finished.event().items() if k != "type"}}]

    def close(self) -> None:
        """Release the tracker; waits for a frame in progress to finish first."""
        with self.lock:
            if not self.closed:
                self.closed = True
                self.tracker.release()


def current_session() -> Session | None:
    """The live session of the Socket.IO connection being handled (None once it has ended)."""
    return current_app.extensions["sessions"].get(request.sid)


class Sessions:
    """The live sessions of this process, by Socket.IO sid."""

    def __init__(self, config: dict):
        self.config = config
        self.trackers = TrackerPool(config["landmarks"])
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()

    def open(self, sid: str) -> Session:
        session = Session(self.config, self.trackers)
        with self._lock:
            old = self._sessions.pop(sid, None)
            self._sessions[sid] = session
        if old:
            old.close()
        return session

    def get(self, sid: str) -> Session | None:
        with self._lock:
            return self._sessions.get(sid)

    def close(self, sid: str) -> None:
        with self._lock:
            session = self._sessions.pop(sid, None)
        if session:
            session.close()

    def __len__(self) -> int:
        with self._lock:
            return len(self._sessions)
