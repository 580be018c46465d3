"""The page's "Transcribe a video": an upload read by app.transcribe in the background, bounded, kept a short while.

POST /api/videos takes the file as the request body (no form encoding: it streams to disk, counted as it comes),
checks that it opens as a video of at most `transcribe.max_duration_s`, and answers 202 {"id"} while it is read;
GET /api/videos/<id> answers {"status": "reading" | "done" | "failed", "progress", "transcript" | "error"}, and
/captions.vtt, /captions.srt, /speech.wav and /transcript.json the results. No login: the upload's size, its
length, the videos read at once and the results kept (count and age) are bounded by config `transcribe`, and an
id is a random capability. The upload is deleted once read, whatever happened; nothing else touches the disk.
Refusals are FrameErrors: {"error": {"code", "message"}} with an HTTP status.
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

from flask import Blueprint, Flask, Response, current_app, jsonify, request

from app.live.frames import FrameError
from app.live.session import TrackerPool
from app.transcribe import Transcript, Video, captions, speak, transcribe

bp = Blueprint("videos", __name__)
CHUNK = 1 << 16
log = logging.getLogger(__name__)
# Any other refusal: 400.
STATUS = {"cross_site": 403, "video_too_large": 413, "video_busy": 429, "video_not_found": 404}


@dataclass
class Job:
    id: str
    created: float = field(default_factory=time.monotonic)
    status: str = "reading"
    progress: float = 0.0
    transcript: Transcript | None = None
    error: FrameError | None = None
    wav: bytes | None = None

    def public(self) -> dict:
        out = {"id": self.id, "status": self.status, "progress": round(self.progress, 3)}
        if self.transcript:
            out["transcript"] = self.transcript.as_dict()
            out["speech"] = self.wav is not None
        if self.error:
            out["error"] = self.error.as_dict()
        return out


class Videos:
    """The jobs of this server: at most `max_jobs` reading, at most `max_kept` kept, none older than `keep_s`."""

    def __init__(self, app: Flask):
        self.config = app.config["SIGN2SOUND"]
        self.settings = self.config["transcribe"]
        self.folder = Path(app.instance_path) / "videos"
        self.folder.mkdir(parents=True, exist_ok=True)
        for leftover in self.folder.iterdir():  # uploads of a server that stopped mid-read
            leftover.unlink(missing_ok=True)
        self.trackers = TrackerPool({**self.config["landmarks"], "max_trackers": self.settings["max_jobs"]})
        self.pool = ThreadPoolExecutor(self.settings["max_jobs"], thread_name_prefix="video")
        self.jobs: dict[str, Job] = {}
        self.reading = 0
        self._lock = threading.Lock()

    def start(self, stream, length: int | None, predictor, speech) -> Job:
        """Take an upload: FrameError video_too_large, video_busy, not_video, video_corrupt or video_too_long, and
        nothing kept; else its job, read in the background."""
        limit = int(self.settings["max_mb"] * 2**20)
        if length is not None and length > limit:
            raise FrameError("video_too_large", f"the file has {length} bytes; the limit is {self.settings['max_mb']} MB")
        with self._lock:
            self._expire()
            if self.reading >= self.settings["max_jobs"]:
                raise FrameError("video_busy", f"this server already reads {self.reading} videos; try again shortly")
            self.reading += 1
        path = None
        try:
            with tempfile.NamedTemporaryFile(dir=self.folder, suffix=".upload", delete=False) as f:
                path = Path(f.name)
                size = 0
                while chunk := stream.read(CHUNK):
                    size += len(chunk)
                    if size > limit:
                        raise FrameError("video_too_large", f"the file is over the limit of {self.settings['max_mb']} MB")
                    f.write(chunk)
            if size == 0:
                raise FrameError("not_video", "the upload was empty")
            Video(path, self.settings["max_duration_s"]).close()  # refused at once when it is no readable video
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
            job.progress = min(0.99, seconds / total) if total > 0 else 0.0

        try:
            transcript = transcribe(path, self.config, predictor, trackers=self.trackers,
                                    max_duration_s=self.settings["max_duration_s"], progress=progress)
            if transcript.text and speech.available:
                try:
                    job.wav = speak(transcript.text, speech)
                except Exception:  # the page speaks with the browser's own voice instead
                    log.exception("speech for video %s failed", job.id)
            job.transcript, job.progress, job.status = transcript, 1.0, "done"
        except FrameError as exc:
            job.error, job.status = exc, "failed"
        except Exception:
            log.exception("video %s failed", job.id)
            job.error, job.status = FrameError("video_corrupt", "the video could not be read to its end"), "failed"
        finally:
            self._done(path)

    def _done(self, path: Path | None) -> None:
        if path is not None:
            path.unlink(missing_ok=True)
        with self._lock:
            self.reading -= 1

    def get(self, job_id: str) -> Job:
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
        job = current_app.extensions["videos"].get(job_id)
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
    app.extensions["videos"] = Videos(app)
    app.register_blueprint(bp)
