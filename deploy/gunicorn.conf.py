"""gunicorn settings for the servers of `make cluster` (and its tests):
`python -m gunicorn -c deploy/gunicorn.conf.py`. Flask-SocketIO's deployment docs for `threading` mode:
ONE worker (its clients' sessions live in that process; more processes need a sticky proxy, see
deploy/nginx.conf) with a thread per connection (simple-websocket holds one for each WebSocket).
Host, port, threads and async mode come from config.yaml / SIGN2SOUND_* like everything else.
`make run` keeps `python wsgi.py`: for one process on the project's machine gunicorn measured slower
(docs/PERFORMANCE.md)."""
from ml.config import load_config

_config = load_config()
wsgi_app = "wsgi:app"
bind = f"{_config['host']}:{_config['port']}"
workers = 1
worker_class = "eventlet" if _config["async_mode"] == "eventlet" else "gthread"
threads = int(_config["server"]["threads"])
graceful_timeout = 3  # open WebSockets never finish by themselves: don't wait gunicorn's 30 s for them
control_socket_disable = True  # several servers on one machine would share its one default path
