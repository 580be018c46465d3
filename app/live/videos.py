"""The page's "Transcribe a video": an upload read by app.transcribe in the background, bounded, kept a short while.

POST /api/videos takes the file as the request body (no form encoding: it streams to disk, counted as it comes),
checks that it opens as a video of at most `transcribe.max_duration_s`, and answers 202 {"id"} while it is read;
GET /api/videos/<id> answers {"status": "reading" | "done" | "failed", "progress", "transcript" | "error"}, and
/captions.vtt, /captions.srt, /speech.wav and /transcript.json the results. No login: the upload's size, its
length, the videos read at once and the results kept (count and age) are bounded by config `transcribe`, and an
id is a random capability. The upload is deleted once read, whatever happened; nothing else touches the disk.
Refusals are FrameErrors: {"error": {"code", "message"}} with an HTTP status.
In cluster mode (config `message_queue`) app.cluster.videos takes the uploads instead: the same checks here, then the
workers read them with `read_upload`, the function this server's threads call, and the bounds hold cluster-wide.
"""
from __future__ import annotations

import json
import logging
import secrets
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from flask import Blueprint, Flask, Response, current_app, jsonify, request

from app.live.frames import FrameError
from app.live.session import TrackerPool
from app.transcribe import Transcript, Video, captions, speak, transcribe

bp = Blueprint("videos", __name__)
CHUNK = 1 << 16
log = logging.getLogger(__name__)
# Any other refusal: 400.
STATUS = {"cross_site": 403, "video_too_large": 413, "video_busy": 429, "video_not_found": 404, "video_queue_down": 503}


@dataclass
class Job:
    id: str
    created: float = field(default_factory=time.monotonic)
    status: str = "reading"
    progress: float = 0.0
    transcript: Transcript | None = None
    error: FrameError | None = None
    speech: bool = False  # the transcript was spoken: a WAV is kept
    wav: bytes | None = None  # that WAV (a cluster's job has it only when asked for: get(wav=True))

    def public(self) -> dict:
        out = {"id": self.id, "status": self.status, "progress": round(self.progress, 3)}
        if self.transcript:
            out["transcript"] = self.transcript.as_dict()
            out["speech"] = self.speech
        if self.error:
            out["error"] = self.error.as_dict()
        return out


class Videos:
    """The jobs of this server: at most `max_jobs` reading, at most `max_kept` kept, none older than `keep_s`."""

    def __init__(self, app: Flask):
        self.config = app.config["SIGN2SOUND"]
        self.settings = self.config["transcribe"]
        self.folder = upload_folder(app)
        self.trackers = TrackerPool({**self.config["landmarks"], "max_trackers": self.settings["max_jobs"]})
        self.pool = ThreadPoolExecutor(self.settings["max_jobs"], thread_name_prefix="video")
        self.jobs: dict[str, Job] = {}
        self.reading = 0
        self._lock = threading.Lock()

    def start(self, stream, length: int | None, predictor, speech) -> Job:
        """Take an upload: FrameError video_too_large, video_busy, not_video, video_corrupt or video_too_long, and
        nothing kept; else its job, read in the background."""
        refuse_oversized(length, self.settings)
        with self._lock:
            self._expire()
            if self.reading >= self.settings["max_jobs"]:
                raise FrameError("video_busy", f"this server already reads {self.reading} videos; try again shortly")
            self.reading += 1
        path = None
        try:
            path = receive(stream, self.folder, self.settings)
            job = Job(secrets.token_urlsafe(16))
            with self._lock:
                self.jobs[job.id] = job
            self._submit(job, path, predictor, speech)
            return job
        except BaseException:
            self._done(path)
            raise

    def _submit(self, *args) -> None:
        from app import socketio

        if socketio.async_mode == "eventlet":  # a real thread: MediaPipe would stall every client on the loop
            from eventlet import tpool

            socketio.start_background_task(tpool.execute, self._read, *args)
        else:
            self.pool.submit(self._read, *args)

    def _read(self, job: Job, path: Path, predictor, speech) -> None:
        def progress(seconds: float, total: float) -> None:
            job.progress = fraction(seconds, total)

        try:
            job.transcript, job.wav = read_upload(path, self.config, predictor, self.trackers, speech, progress)
            job.speech, job.progress, job.status = job.wav is not None, 1.0, "done"
        except FrameError as exc:
            job.error, job.status = exc, "failed"
        finally:
            self._done(path)

    def _done(self, path: Path | None) -> None:
        if path is not None:
            path.unlink(missing_ok=True)
        with self._lock:
            self.reading -= 1

    def get(self, job_id: str, wav: bool = False) -> Job:
        """The job (its WAV is in it here; `wav` asks a cluster to fetch it) or FrameError video_not_found."""
        with self._lock:
            self._expire()
            job = self.jobs.get(job_id)
        if job is None:
            raise FrameError("video_not_found", "no such video: it was never sent here, or its transcript expired")
        return job

    def _expire(self) -> None:
        """Drop finished jobs past `keep_s`, then the oldest finished beyond `max_kept` (the caller holds the lock)."""
        now = time.monotonic()
        finished = [j for j in self.jobs.values() if j.status != "reading"]
        for job in finished:
            if now - job.created > self.settings["keep_s"]:
                del self.jobs[job.id]
        finished = [j for j in finished if j.id in self.jobs]
        for job in finished[:max(0, len(finished) - self.settings["max_kept"])]:
            del self.jobs[job.id]


def upload_folder(app: Flask) -> Path:
    """instance/videos, emptied of the uploads a server left there when it stopped mid-read."""
    folder = Path(app.instance_path) / "videos"
    folder.mkdir(parents=True, exist_ok=True)
    for leftover in folder.iterdir():
        leftover.unlink(missing_ok=True)
    return folder


def refuse_oversized(length: int | None, settings: dict) -> None:
    """FrameError video_too_large when the request says it is bigger than `transcribe.max_mb`."""
    if length is not None and length > settings["max_mb"] * 2**20:
        raise FrameError("video_too_large", f"the file has {length} bytes; the limit is {settings['max_mb']} MB")


def receive(stream, folder: Path, settings: dict) -> Path:
    """The upload streamed into a file in `folder`, counted as it comes, then opened as a video: its path, or
    FrameError video_too_large, not_video, video_corrupt or video_too_long with nothing left behind."""
    limit, path = int(settings["max_mb"] * 2**20), None
    try:
        with tempfile.NamedTemporaryFile(dir=folder, suffix=".upload", delete=False) as f:
            path = Path(f.name)
            size = 0
            while chunk := stream.read(CHUNK):
                size += len(chunk)
                if size > limit:
                    raise FrameError("video_too_large", f"the file is over the limit of {settings['max_mb']} MB")
                f.write(chunk)
        if size == 0:
            raise FrameError("not_video", "the upload was empty")
        Video(path, settings["max_duration_s"]).close()  # refused at once when it is no readable video
        return path
    except BaseException:
        if path is not None:
            path.unlink(missing_ok=True)
        raise


def read_upload(path: Path, config: dict, predictor, trackers: TrackerPool, speech,
                progress: Callable[[float, float], None]) -> tuple[Transcript, bytes | None]:
    """The one reading of an upload, by this server or by a cluster's worker: its transcript and, when there are
    words and server speech, their WAV. FrameError when it cannot be read (anything unforeseen: video_corrupt)."""
    try:
        transcript = transcribe(path, config, predictor, trackers=trackers,
                                max_duration_s=config["transcribe"]["max_duration_s"], progress=progress)
    except FrameError:
        raise
    except Exception as exc:
        log.exception("video %s failed", path.name)
        raise FrameError("video_corrupt", "the video could not be read to its end") from exc
    wav = None
    if transcript.text and speech.available:
        try:
            wav = speak(transcript.text, speech)
        except Exception:  # the page speaks with the browser's own voice instead
            log.exception("speech for video %s failed", path.name)
    return transcript, wav


def fraction(seconds: float, total: float) -> float:
    """A reading's progress, below 1 until it is done."""
    return min(0.99, seconds / total) if total > 0 else 0.0


def refusal(exc: FrameError):
    return jsonify(error=exc.as_dict()), STATUS.get(exc.code, 400)


@bp.post("/api/videos")
def upload():
    try:
        # No login guards the upload, so another site's page must not make a visitor's browser post one (a raw
        # body passes as a "simple" request, with no CORS preflight): browsers say where a request comes from.
        if request.headers.get("Sec-Fetch-Site", "same-origin") not in ("same-origin", "none"):
            raise FrameError("cross_site", "videos are taken only from this server's own page")
        job = current_app.extensions["videos"].start(request.stream, request.content_length,
                                                     current_app.extensions["predictor"],
                                                     current_app.extensions["speech"])
    except FrameError as exc:
        return refusal(exc)
    return jsonify(job.public()), 202


@bp.get("/api/videos/<job_id>")
def status(job_id: str):
    try:
        return jsonify(current_app.extensions["videos"].get(job_id).public())
    except FrameError as exc:
        return refusal(exc)


@bp.get("/api/videos/<job_id>/<name>")
def result(job_id: str, name: str):
    try:
        job = current_app.extensions["videos"].get(job_id, wav=name == "speech.wav")
    except FrameError as exc:
        return refusal(exc)
    if job.transcript is None or (name == "speech.wav" and job.wav is None):
        return refusal(FrameError("video_not_found", "this video has no such result (yet)"))
    made = {"captions.vtt": lambda: (captions(job.transcript, "vtt"), "text/vtt"),
            "captions.srt": lambda: (captions(job.transcript, "srt"), "application/x-subrip"),
            "transcript.json": lambda: (json.dumps(job.transcript.as_dict(), indent=1), "application/json"),
            "speech.wav": lambda: (job.wav, "audio/wav")}
    if name not in made:
        return refusal(FrameError("video_not_found", f"no result named {name}"))
    body, mime = made[name]()
    download = request.args.get("download") is not None
    headers = {"Content-Disposition": f'attachment; filename="{name}"'} if download else {}
    return Response(body, mimetype=mime, headers=headers)


def init_app(app: Flask) -> None:
    """After the admin's init: a cluster's videos use its shared store (app.extensions["admin_db"])."""
    if app.config["SIGN2SOUND"].get("message_queue"):
        from app.cluster.videos import ClusterVideos  # Redis and RQ are imported only in cluster mode

        app.extensions["videos"] = ClusterVideos(app, app.extensions["admin_db"])
    else:
        app.extensions["videos"] = Videos(app)
    app.register_blueprint(bp)
