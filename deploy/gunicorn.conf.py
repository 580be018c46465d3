"""gunicorn settings for `make run`, the servers of `make cluster` and the tests' shared server:
`python -m gunicorn -c deploy/gunicorn.conf.py`. Flask-SocketIO's deployment docs: ONE worker (its clients'
sessions live in that process; more processes need a sticky proxy, see deploy/nginx.conf); for `gevent` mode
gunicorn's gevent worker (it monkey-patches the process: every thread is a greenlet on one loop), for `threading`
a thread per connection (simple-websocket holds one for each WebSocket).
Host, port, threads and async mode come from config.yaml / SIGN2SOUND_* like everything else.
(`python wsgi.py` serves the same app with Werkzeug's development server; docs/PERFORMANCE.md compares them.)"""
from ml.config import load_config

_config = load_config()
wsgi_app = "wsgi:app"
bind = f"{_config['host']}:{_config['port']}"
workers = 1
if _config["async_mode"] == "eventlet":  # gunicorn 23 deprecated its eventlet worker and 27 no longer has one
    raise SystemExit("async_mode eventlet: gunicorn has no eventlet worker; serve with `python wsgi.py` "
                     "(Flask-SocketIO runs eventlet's own server there)")
if _config["async_mode"] == "gevent":  # gunicorn monkey-patches the worker: every thread is a greenlet
    worker_class = "gevent"
    worker_connections = int(_config["server"]["threads"])
else:
    worker_class = "gthread"
    threads = int(_config["server"]["threads"])
graceful_timeout = 3  # open WebSockets never finish by themselves: Ctrl-C or a stop waits 3 s, not gunicorn's 30
control_socket_disable = True  # several servers on one machine would share its one default path
