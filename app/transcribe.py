"""`python -m app.transcribe VIDEO`: a recorded video in, its fingerspelled words out (text, captions, speech).

A recording is read by the live page's own pipeline: one Session (a tracking-mode HandTracker, the same features,
window, speller and word decoder) takes the video's frames in order. Frames are sampled at the live page's rate
(`transcribe.fps`), since the speller's hold is counted in frames, and scaled as the page sends them. The windows
of a batch of frames go to the model together (Session.read), so a file reads faster than it plays. A word ends at
the `space` sign or when no hand is seen for `transcribe.word_gap_s`, as a signer lowers the hand between words.
stdout gets the transcript only; progress goes to stderr. The page's uploads use `transcribe` too (app.live.videos,
or a cluster's workers: app.cluster.videos).
"""
from __future__ import annotations

import argparse
import io
import json
import sys
import wave
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import cv2

from app.live.blocking import native_iter
from app.live.frames import FrameError, image_format
from app.live.session import Session, TrackerPool
from app.live.speech import MAX_TEXT, Speech
from ml.inference import PersonalModel, Predictor

# Leading bytes of the containers OpenCV's FFmpeg reads: a file that starts so but cannot be read is damaged.
CONTAINERS = [(4, b"ftyp"), (0, b"RIFF"), (0, b"\x1a\x45\xdf\xa3"), (0, b"OggS"), (0, b"FLV"), (0, b"\x00\x00\x01\xba"),
              (0, b"\x30\x26\xb2\x75")]  # MP4/MOV, AVI, Matroska/WebM, Ogg, FLV, MPEG-PS, ASF/WMV


@dataclass
class Letter:
    letter: str
    confidence: float  # the model's mean confidence over the frames that held it
    time: float  # seconds: when its hold began


@dataclass
class Word:
    value: str  # as decoded
    raw: str  # as spelled
    alternatives: list[str]
    start: float  # its first letter's hold
    end: float  # the `space`, or the last frame with a hand before the pause that ended it
    letters: list[Letter] = field(default_factory=list)


@dataclass
class Transcript:
    words: list[Word]
    duration: float  # seconds of video
    frames_read: int
    frames_with_hand: int

    @property
    def text(self) -> str:
        return " ".join(w.value for w in self.words)

    def as_dict(self) -> dict:
        return {"text": self.text, **asdict(self)}

    @classmethod
    def from_dict(cls, data: dict) -> "Transcript":
        """The transcript `as_dict` wrote (a cluster worker's, read back from Redis)."""
        words = [Word(**{**w, "letters": [Letter(**x) for x in w["letters"]]}) for w in data["words"]]
        return cls(words, data["duration"], data["frames_read"], data["frames_with_hand"])


class Video:
    """An opened video file: its frame rate, declared length and frames; FrameError not_video, video_corrupt or
    video_too_long (its declared length, or the frames it turns out to have, past `max_duration_s`)."""

    def __init__(self, path: str | Path, max_duration_s: float | None = None):
        self.path, self.max_duration_s = str(path), max_duration_s
        with open(path, "rb") as f:
            head = f.read(16)
        self.capture = cv2.VideoCapture(self.path, cv2.CAP_FFMPEG)
        self.fps = self.capture.get(cv2.CAP_PROP_FPS) if self.capture.isOpened() else 0.0
        if picture(head) or not self.capture.isOpened() or not 0 < self.fps < 1000:  # FFmpeg opens a JPEG too
            self.close()
            raise not_readable(head)
        self.fps = float(self.fps)
        self.duration = max(0.0, self.capture.get(cv2.CAP_PROP_FRAME_COUNT)) / self.fps  # declared: may be off
        if max_duration_s is not None and self.duration > max_duration_s:
            self.close()
            raise FrameError("video_too_long", f"the video lasts {self.duration:.1f} s; the limit is {max_duration_s:g} s")
        self.head = head

    def frames(self, every: int):
        """(index, seconds, BGR image) of every `every`-th frame, in order."""
        index = 0
        while self.capture.grab():
            seconds = index / self.fps
            if self.max_duration_s is not None and seconds > self.max_duration_s:
                raise FrameError("video_too_long", f"the video lasts over {self.max_duration_s:g} s, the limit")
            if index % every == 0:
                ok, image = self.capture.retrieve()
                if not ok or image is None:
                    raise FrameError("video_corrupt", f"frame {index} of the video could not be decoded")
                yield index, seconds, image
            index += 1
        if index == 0:
            raise not_readable(self.head)
        self.duration = index / self.fps

    def close(self) -> None:
        self.capture.release()


def not_readable(head: bytes) -> FrameError:
    """The error for a file no frame could be read from: damaged when it starts as a video container does."""
    if any(head[at:at + len(magic)] == magic for at, magic in CONTAINERS):
        return FrameError("video_corrupt", "the file looks like a video but is damaged: no frame could be read")
    kind = f"a {picture(head).upper()} picture" if picture(head) else "in no video format this server reads"
    return FrameError("not_video", f"the file is {kind}, not a video")


def picture(head: bytes) -> str | None:
    """"jpeg" or "png" when the file is one (the frames' own check), else None."""
    try:
        return image_format(head)
    except FrameError:
        return None


def transcribe(path: str | Path, config: dict, predictor: Predictor, personal: PersonalModel | None = None,
               trackers: TrackerPool | None = None, max_duration_s: float | None = None,
               progress: Callable[[float, float], None] | None = None) -> Transcript:
    """Read the video at `path` through a live Session (its own, on `trackers` when given) -> its words.
    FrameError (not_video, video_corrupt, video_too_long, video_no_hand) when it cannot be read."""
    settings = config["transcribe"]
    video = Video(path, max_duration_s)
    session = Session(config, trackers or TrackerPool(config["landmarks"]))
    session.use_personal(None, personal)
    hold = config["speller"]["hold_frames"]
    try:
        every = max(1, round(video.fps / settings["fps"]))
        step = every / video.fps  # seconds between frames read
        gap = max(1, round(settings["word_gap_s"] / step))
        words, letters = [], []
        held = deque(maxlen=hold)  # (seconds, confidence) of the latest frames, for a letter's hold
        batch, no_hand, last_hand, seen, read = [], 0, 0.0, 0, 0

        def take(events: list[dict], seconds: float, end: float) -> None:
            for event in events:
                if event["type"] == "letter":
                    frames = list(held)[-hold:]
                    letters.append(Letter(event["value"], round(sum(c for _, c in frames) / len(frames), 4),
                                          round(frames[0][0], 3)))
                elif event["type"] == "del":
                    if letters:
                        letters.pop()
                    elif words:  # the space was deleted: the last word is being spelled again
                        letters.extend(words.pop().letters)
                elif event["type"] == "word" and letters:
                    words.append(Word(event["value"], event["raw"], event["alternatives"],
                                      letters[0].time, round(end, 3), letters[:]))
                    letters.clear()

        def flush() -> None:
            with session.lock:
                readings = session.read([(hand, aspect) for _, hand, aspect in batch], predictor)
            for (seconds, _, _), reading in zip(batch, readings):
                held.append((seconds, reading["confidence"]))
                take(reading["events"], seconds, seconds + step)
            batch.clear()

        for _, seconds, image in native_iter(video.frames(every)):  # decoded off a gevent loop
            image = fit_width(image, settings["max_width"])
            hand = session.tracker.process(image)
            read += 1
            h, w = image.shape[:2]
            batch.append((seconds, hand, w / h))
            if hand is not None:
                seen, no_hand, last_hand = seen + 1, 0, seconds
            else:
                no_hand += 1
            if no_hand == gap:  # the hand was lowered: the word ends where it was last seen
                flush()
                take(session.space()["events"], seconds, last_hand + step)
            elif len(batch) >= settings["batch"]:
                flush()
            if progress:
                progress(seconds, video.duration)
        flush()
        take(session.space()["events"], video.duration, last_hand + step)
        if progress:
            progress(video.duration, video.duration)
        if not seen:
            raise FrameError("video_no_hand", f"no hand was seen in any of the {read} frames read")
        return Transcript(words, round(video.duration, 3), read, seen)
    finally:
        video.close()
        session.close()


def fit_width(image, width: int):
    """Scaled down to `width` pixels wide (the live page's frames), when wider. Bilinear: INTER_AREA took 5x as long
    on a 1080x1920 frame, as long as MediaPipe itself (docs/PERFORMANCE.md, "Video files")."""
    h, w = image.shape[:2]
    return image if w <= width else cv2.resize(image, (width, round(h * width / w)), interpolation=cv2.INTER_LINEAR)


def captions(transcript: Transcript, kind: str) -> str:
    """SubRip ("srt") or WebVTT ("vtt"): one cue per word, from its first letter to its end."""
    def stamp(seconds: float) -> str:
        ms = round(seconds * 1000)
        text = f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d}.{ms % 1000:03d}"
        return text.replace(".", ",") if kind == "srt" else text

    cues = [f"{stamp(w.start)} --> {stamp(max(w.end, w.start + 0.001))}\n{w.value}\n" for w in transcript.words]
    if kind == "srt":
        return "\n".join(f"{n}\n{cue}" for n, cue in enumerate(cues, 1))
    return "WEBVTT\n\n" + "\n".join(cues)


def speak(text: str, speech: Speech) -> bytes:
    """The whole transcript as one WAV: espeak-ng (app.live.speech) takes MAX_TEXT characters at a time."""
    pieces, piece = [], ""
    for word in text.split():
        if piece and len(piece) + 1 + len(word) > MAX_TEXT:
            pieces.append(piece)
            piece = ""
        piece = f"{piece} {word}".strip()
    pieces.append(piece)
    out = io.BytesIO()
    with wave.open(out, "wb") as joined:
        for n, piece in enumerate(pieces):
            with wave.open(io.BytesIO(speech.render(piece))) as w:
                if n == 0:
                    joined.setparams(w.getparams())
                joined.writeframes(w.readframes(w.getnframes()))
    return out.getvalue()


class Progress:
    """A progress bar on stderr, redrawn at most at each whole percent."""

    def __init__(self, stream=sys.stderr, width: int = 30):
        self.stream, self.width, self.shown = stream, width, -1

    def __call__(self, seconds: float, total: float) -> None:
        done = min(1.0, seconds / total) if total > 0 else 0.0
        if int(done * 100) != self.shown:
            self.shown = int(done * 100)
            bar = "#" * round(done * self.width)
            self.stream.write(f"\r[{bar:<{self.width}}] {self.shown:3d}% {seconds:.1f}/{total:.1f} s")
            self.stream.flush()

    def end(self) -> None:
        if self.shown >= 0:
            self.stream.write("\n")


def main(argv=None) -> int:
    from ml.config import load_config, project_path

    parser = argparse.ArgumentParser(prog="python -m app.transcribe", description=__doc__.split("\n")[0])
    parser.add_argument("video", help="any video file OpenCV's FFmpeg opens (mp4, avi, mov, webm, ...)")
    parser.add_argument("--srt", metavar="PATH", help="write captions as SubRip, one cue per word")
    parser.add_argument("--vtt", metavar="PATH", help="write captions as WebVTT, one cue per word")
    parser.add_argument("--wav", metavar="PATH", help="write the transcript spoken (espeak-ng)")
    parser.add_argument("--json", metavar="PATH", help="write words with times, raw spellings, alternatives and "
                                                         "each letter's confidence")
    parser.add_argument("--checkpoint", metavar="PATH", help="read with this model (default: config model.checkpoint)")
    parser.add_argument("--personal-key", metavar="KEY", help="read with the personal model this key opens "
                                                              "(made by the page's Calibrate, in the instance folder; a key "
                                                              "that starts with '-': --personal-key=KEY)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)

    import torch

    config = load_config()
    torch.set_num_threads(int(config["model"]["torch_threads"]))
    predictor = Predictor(args.checkpoint or project_path(config["model"]["checkpoint"]), config["model"]["device"])
    personal = None
    if args.personal_key:
        from app.live.personal import PersonalStore

        cal = config["calibration"]
        store = PersonalStore(project_path(config["instance_dir"]) / "personal", cal["max_personal_models"],
                              cal["max_store_mb"] * 2**20, predictor.device)
    progress = Progress() if not args.quiet else None
    try:
        personal = store.load(args.personal_key) if args.personal_key else None
        transcript = transcribe(args.video, config, predictor, personal, progress=progress)
        if args.wav:
            Path(args.wav).write_bytes(speak(transcript.text, Speech(**config["speech"])))
    except (FrameError, OSError, RuntimeError, ValueError) as exc:
        if progress:
            progress.end()
        print(f"{args.video}: {exc}", file=sys.stderr)
        return 1
    finally:
        predictor.close()
    if progress:
        progress.end()
    for path, text in ((args.srt, lambda: captions(transcript, "srt")), (args.vtt, lambda: captions(transcript, "vtt")),
                       (args.json, lambda: json.dumps(transcript.as_dict(), indent=1))):
        if path:
            Path(path).write_text(text())
    print(transcript.text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
