"""The app for a WSGI server: `make run` serves `wsgi:app` with gunicorn (deploy/gunicorn.conf.py). `python wsgi.py`
serves it with Flask-SocketIO's own server instead (gevent's, eventlet's or Werkzeug's, by async mode), on
SIGN2SOUND_HOST:SIGN2SOUND_PORT (config.yaml: 127.0.0.1:5000): no setup step; the servers a test starts for a
setting of its own run that way."""
from __future__ import annotations

import ctypes
import ctypes.util


def limit_malloc_arenas(count: int = 2) -> None:
    """glibc gives every busy thread its own malloc arena and keeps it; with a thread per Socket.IO event (as
    python-socketio runs events unless async_handlers is off) the server's memory climbed ~135 MB per 1,200 bad
    messages before levelling off (tests/test_hardening.py), and a thread per connection still makes many threads.
    Two arenas keep it flat. Must run before the server starts its threads; a no-op off glibc."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        libc.mallopt(-8, count)  # M_ARENA_MAX
    except (OSError, AttributeError):
        pass


limit_malloc_arenas()  # before torch and MediaPipe start their threads

from ml.config import load_config  # noqa: E402

config = load_config()
if __name__ == "__main__" and config["async_mode"] == "gevent":
    from gevent import monkey

    monkey.patch_all()  # what gunicorn's gevent worker does, before the app makes its locks and threads

import torch  # noqa: E402

from app import create_app, socketio  # noqa: E402

torch.set_num_threads(config["model"]["torch_threads"])
app = create_app(config)

if __name__ == "__main__":
    socketio.run(app, host=config["host"], port=int(config["port"]), allow_unsafe_werkzeug=True)
