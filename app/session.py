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

from app.frames import FrameError, decode_frame
from app.speller import REST, Speller
from ml.features import hand_features
from ml.inference import Predictor
from ml.landmarks import HandTracker, tracker_settings

TOP_K = 3
MODEL_TIMEOUT_S = 10  # a stuck model fails the frame with an error instead of holding the client forever


class TrackerPool:
    """Idle tracking-mode trackers, reset and handed to the next client. Closing a MediaPipe graph did not
    give its memory back in the server (RSS grew ~40 MB with every connection, measured), so a graph is made
    only when every idle one is in use: the pool grows to the most clients seen at once, no further."""

    def __init__(self, landmarks_config: dict):
        self.landmarks_config = landmarks_config
        self._idle: list[HandTracker] = []
        self._lock = threading.Lock()

    def acquire(self) -> HandTracker:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        return HandTracker(static=False, **tracker_settings(self.landmarks_config))

    def release(self, tracker: HandTracker) -> None:
        tracker.reset()
        with self._lock:
            self._idle.append(tracker)


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
        self.trackers = trackers
        # Taken on the first good frame: a MediaPipe graph costs ~80 MB, so a connection that never sends a
        # decodable frame (an idle tab, a fuzzer) costs none.
        self.tracker: HandTracker | None = None
        sp = config["speller"]
        self.speller = Speller(sp["hold_frames"], sp["min_confidence"], sp["rest_frames"])
        self.frames_config = config["frames"]
        self.rate = RateLimiter(config["frames"]["max_fps"])
        self.window: deque[np.ndarray] = deque()
        self.lock = threading.Lock()
        self.closed = False

    def state(self, events: list[dict] | None = None) -> dict:
        return {"word": self.speller.word, "text": self.speller.text, "events": events or []}

    def process(self, data: bytes, predictor: Predictor, seq: int | None = None) -> dict:
        """One frame's bytes -> the `result` payload (the caller has checked `rate`). FrameError for a bad frame."""
        timings = {}
        t0 = time.perf_counter()
        image = decode_frame(data, self.frames_config["max_bytes"], self.frames_config["max_pixels"])
        t1 = time.perf_counter()
        timings["decode"] = t1 - t0
        with self.lock:
            if self.closed:
                raise FrameError("closed", "the session has ended")
            if self.tracker is None:
                self.tracker = self.trackers.acquire()
            hand = self.tracker.process(image)
            t2 = time.perf_counter()
            timings["landmarks"] = t2 - t1
            if hand is None:
                # No hand, no model call: the hand is at rest, and a new sign starts a new window.
                self.window.clear()
                letter, confidence, top = REST, 1.0, [[REST, 1.0]]
                timings["features"] = timings["inference"] = 0.0
                t4 = t2
            else:
                h, w = image.shape[:2]
                self.window.append(hand_features(hand.landmarks, aspect=w / h, is_left=hand.is_left))
                while len(self.window) > predictor.window:
                    self.window.popleft()
                t3 = time.perf_counter()
                timings["features"] = t3 - t2
                # The predictor's one worker batches this window with every other client's waiting now.
                probs = predictor.submit(np.stack(self.window)).result(timeout=MODEL_TIMEOUT_S)
                t4 = time.perf_counter()
                timings["inference"] = t4 - t3
                classes = predictor.classes
                order = np.argsort(probs)[::-1][:TOP_K]
                top = [[classes[i], round(float(probs[i]), 4)] for i in order]
                letter, confidence = top[0]
            events = self.speller.update(letter, confidence)
            timings["speller"] = time.perf_counter() - t4
            result = {"seq": seq, "hand": hand is not None, "letter": letter, "confidence": confidence,
                      "top": top, "landmarks": None if hand is None else np.round(hand.landmarks, 4).tolist(),
                      **self.state(events)}
        timings["total"] = time.perf_counter() - t0
        result["timings_ms"] = {k: round(v * 1000, 3) for k, v in timings.items()}
        return result

    def undo(self) -> dict:
        with self.lock:
            return self.state(self.speller.undo())

    def reset(self) -> dict:
        with self.lock:
            self.window.clear()
            return self.state(self.speller.reset())

    def close(self) -> None:
        """Release the tracker; waits for a frame in progress to finish first."""
        with self.lock:
            if not self.closed:
                self.closed = True
                if self.tracker is not None:
                    self.trackers.release(self.tracker)
                    self.tracker = None


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
