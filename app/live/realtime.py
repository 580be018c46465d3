"""Socket.IO handlers of the live page (default namespace). Protocol (kept stable: tests and tools use it):

client -> `frame` (JPEG/PNG bytes or {"seq", "image"}, or the page's own tracker's {"seq", "landmarks", "handedness",
          "aspect"}: app.live.landmark_frames), `reset`, `undo`, `speak`, `ping` (acks its payload),
          `space` (ends the word as the `space` sign does), `choose` {"index": i} or {"raw": true};
          `calibrate`: app.live.calibration; `practice`: app.live.practice; `adapt`, `forget`, `learn_words`
          (whether free spelling teaches: app.live.confirmed) and connect's auth {"personal_key"}: app.live.learning;
          connect's auth {"words": [spellings the user kept before], "misreadings": the last `misreadings`}:
          a returning user's decoder (Session.restore_words, restore_misreadings)
server -> `result` (one per accepted frame, with "suggestions" for the current word; "model": "personal" or
          the shared model's id), `error` {"code", "message", "seq"} (one per refused frame), `speech` {"text",
          "audio": WAV bytes, "mime"} when a word is finished or replaced, or speech is asked for;
          `misreadings` {"model", "meant", "misread"} when the decoder learned from a word (the page keeps it).
`reset`, `undo`, `space` and `choose` also answer their ack with {"word", "text", "events", "version"}; a `result`
carries "version" too, counting the session's states in the order they were made: one older than a state already
shown is stale (a frame read before a word action, sent after its ack). A finished word is
the event {"type": "word", "value": decoded, "raw": as signed, "alternatives": [...]}; `choose` (and `undo` of a
decoded word) replaces it: {"type": "replace", "value", "raw", "alternatives"}. "text" is the transcript's latest
1,000 characters, and a word of 40 letters ends as if `space` were signed (app.live.speller's MAX_TEXT, MAX_WORD).

Every frame gets exactly one reply, `result` or `error`, so a client's in-flight count always comes down.
Replies go to a client of this server straight, never through a message queue (`ignore_queue`): in cluster
mode a reply through Redis would be a publish per frame, received by every server, and a handler that waits
on Redis when it is slow or down.
Handlers never run CPU work on the event loop: under eventlet it goes to a real thread (tpool), so one
client's MediaPipe never delays another's ping; under threading a client's events run in turn on its own
connection's thread (app/__init__.py: async_handlers off).
"""
from __future__ import annotations

import logging
import socket
import threading

from flask import Flask, current_app, request

from app import socketio
from app.live import learning
from app.live.blocking import run_blocking, run_without_tracker
from app.live.frames import FrameError, parse_payload
from app.live.landmark_frames import LandmarkFrame, is_landmark_frame, parse_landmarks
from app.live.decoder import shared_lexicon
from app.live.session import Sessions, current_session
from app.live.speech import Speech, SpeechQueue

log = logging.getLogger(__name__)


def init_realtime(app: Flask) -> None:
    """Sessions and speech for `app`; call after socketio.init_app (it wraps the Socket.IO WSGI app)."""
    config = app.config["SIGN2SOUND"]
    app.extensions["sessions"] = Sessions(config)
    app.extensions["speech"] = Speech(**config["speech"])
    app.wsgi_app = NoDelay(app.wsgi_app)
    threading.Thread(target=shared_lexicon, daemon=True).start()  # ~1 s: ready before the first word ends


class NoDelay:
    """WSGI middleware: TCP_NODELAY on every connection. A binary Socket.IO message is written as two
    WebSocket frames; with Nagle's algorithm the second waited for the client's delayed ACK: `speak` ->
    `speech` (a ~30 KB WAV) took 44 ms without it and 0.8 ms with it, in every async mode."""

    def __init__(self, wsgi_app):
        self.wsgi_app = wsgi_app

    def __call__(self, environ, start_response):
        # Werkzeug's, gunicorn's threads' and gunicorn's gevent worker's keys
        sock = environ.get("werkzeug.socket") or environ.get("gunicorn.socket") or environ.get("gunicorn.sock")
        if sock is None and "eventlet.input" in environ:
            sock = environ["eventlet.input"].get_socket()
        if sock is None and environ.get("SERVER_SOFTWARE", "").startswith("gevent"):  # gevent's WSGI server
            sock = getattr(getattr(getattr(environ["wsgi.input"], "rfile", None), "raw", None), "_sock", None)
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except (OSError, AttributeError):  # a Unix socket or a wrapper without options
                pass
        return self.wsgi_app(environ, start_response)



@socketio.on("connect")
def on_connect(auth=None):
    session = run_blocking(current_app.extensions["sessions"].open, request.sid)
    learning.on_connect(session, auth)  # auth {"personal_key"}: read with that user's model
    auth = auth if isinstance(auth, dict) else {}
    shared_model = current_app.extensions["predictor"].model_id
    restores = {"words": session.restore_words,
                "misreadings": lambda learned: session.restore_misreadings(learned, shared_model)}
    for name, restore in restores.items():
        if auth.get(name) is not None:
            try:
                run_blocking(restore, auth[name])
            except FrameError as exc:  # the connection goes on, without it
                socketio.emit("error", exc.as_dict(), to=request.sid, ignore_queue=True)


@socketio.on("disconnect")
def on_disconnect(reason=None):
    learning.on_disconnect(request.sid)
    run_blocking(current_app.extensions["sessions"].close, request.sid)


@socketio.on("frame")
def on_frame(payload=None, *_):  # any argument count: a bad one gets an error reply, not a stall
    seq = payload.get("seq") if isinstance(payload, dict) else None
    seq = seq if type(seq) is int else None  # echoed in an error only when it is a valid seq
    try:
        seq, data = parse_landmarks(payload) if is_landmark_frame(payload) else parse_payload(payload)
        session = current_session()
        if session is None:
            raise FrameError("no_session", "no live session for this connection; reconnect")
        session.rate.admit()
        run = run_without_tracker if isinstance(data, LandmarkFrame) else run_blocking
        result = run(session.process, data, current_app.extensions["predictor"], seq)
    except FrameError as exc:
        socketio.emit("error", exc.as_dict(seq), to=request.sid, ignore_queue=True)
        return
    except Exception:  # the client still gets its reply; the server keeps serving
        log.exception("frame %s from %s failed", seq, request.sid)
        socketio.emit("error", FrameError("server_error", "the frame could not be processed").as_dict(seq),
                      to=request.sid, ignore_queue=True)
        return
    socketio.emit("result", result, to=request.sid, ignore_queue=True)
    _speak_words(result["events"])


@socketio.on("ping")
def on_ping(payload=None, *_):
    """Echo for measuring the round trip without any model work (bench.latency's other-client ping)."""
    return payload


def _word_action(name: str, *args):
    """Run session.<name> (undo, space, choose): its state is the ack; a word it finished or replaced is spoken."""
    session = current_session()
    if not session:
        return None
    state = run_blocking(getattr(session, name), *args)
    _speak_words(state["events"])
    return state


@socketio.on("undo")
def on_undo(*_):
    return _word_action("undo")


@socketio.on("space")
def on_space(*_):
    return _word_action("space")


@socketio.on("choose")
def on_choose(choice=None, *_):
    try:
        return _word_action("choose", choice)
    except FrameError as exc:
        socketio.emit("error", exc.as_dict(), to=request.sid, ignore_queue=True)
        return None


@socketio.on("reset")
def on_reset(*_):
    session = current_session()
    return run_blocking(session.reset) if session else None


@socketio.on("speak")
def on_speak(*_):
    session = current_session()
    text = session.speller.text.strip() if session else ""
    if not text:
        socketio.emit("error", FrameError("nothing_to_speak", "there is no text to speak yet").as_dict(),
                      to=request.sid, ignore_queue=True)
        return None
    _speak_later(text)
    return {"text": text}


def _speak_words(events: list[dict]) -> None:
    """Speak each finished or replaced word; send what the decoder learned from it (`misreadings`)."""
    for event in events:
        if event["type"] in ("word", "replace"):
            _speak_later(event["value"])
    if any(event["type"] in ("word", "replace") for event in events):  # a word taught: enough adapt in the background
        learning.adapt_when_due(current_session())
    if not any(event["type"] in ("word", "replace", "del") for event in events):  # nothing learned or taken back
        return
    session = current_session()
    # Off the event loop: it waits for the session's lock, which a frame being read holds.
    learned = session and run_blocking(session.misreadings, current_app.extensions["predictor"].model_id)
    if learned:
        socketio.emit("misreadings", learned, to=request.sid, ignore_queue=True)


def _speak_later(text: str) -> None:
    """Render `text` in the background and send it to this client as `speech` (the result goes first): queued
    behind what this client is already hearing, one speaker per client (app.live.speech.SpeechQueue)."""
    session = current_session()
    if session is not None and session.to_speak.put(text):
        socketio.start_background_task(_speaker, current_app.extensions["speech"], request.sid, session.to_speak)


def _speaker(speech: Speech, sid: str, texts: SpeechQueue) -> None:
    while (text := texts.next()) is not None:
        try:
            _speak(speech, sid, text)
        except Exception:  # the speaker must go on, or this client's speech would stop for good
            log.exception("speaking to %s failed", sid)


def _speak(speech: Speech, sid: str, text: str) -> None:
    if not speech.available:
        return  # the page knows from /api/status and speaks with speechSynthesis
    try:
        audio = run_blocking(speech.render, text)
    except Exception as exc:  # SpeechUnavailable, a failed or timed-out espeak-ng: the page falls back
        log.warning("speech for %r failed: %s: %s", text, type(exc).__name__, exc)
        socketio.emit("error", FrameError("tts_failed", f"server speech failed: {exc}").as_dict(), to=sid, ignore_queue=True)
        return
    socketio.emit("speech", {"text": text, "audio": audio, "mime": "audio/wav"}, to=sid, ignore_queue=True)
