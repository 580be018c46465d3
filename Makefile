# make run: set up and serve on 127.0.0.1:5000 with the shipped model: gunicorn, one worker with a thread per
# connection (deploy/gunicorn.conf.py; one process, SQLite). Ctrl-C stops it.
# make cluster: redis-server, N servers, a training worker and nginx on :5000 (docs/DEPLOYMENT.md).
# make test: set up and run the tests, in TEST_WORKERS processes at once (pytest-xdist; a file stays in one, and the
# files that share a session server share a process: tests/conftest.py).
PYTHON ?= python3
N ?= 2
TEST_WORKERS ?= 2
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: run cluster test setup setup-dev system bench clean

run: setup system
	$(PY) -m gunicorn -c deploy/gunicorn.conf.py

cluster: setup system
	$(PY) -m deploy.cluster --servers $(N)

test: setup-dev system
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadgroup

setup: $(VENV)/.runtime node_modules/.installed
setup-dev: $(VENV)/.dev node_modules/.installed

# The page's hand tracker (package.json, pinned by package-lock.json), served by the app from /vendor/hands/.
# Without npm the page sends its frames to the server's tracker instead.
node_modules/.installed: package.json package-lock.json
	if command -v npm >/dev/null; then npm ci --no-audit --no-fund --loglevel=error && touch $@; \
	else echo "npm is missing: the page's hand tracker is not installed (hand tracking runs on the server)" >&2; fi

$(VENV)/.runtime: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -r requirements.txt
	touch $@

$(VENV)/.dev: $(VENV)/.runtime requirements-dev.txt
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $@

system:
	bash scripts/install_system.sh

bench: setup-dev
	$(PY) -m bench.latency
	$(PY) -m bench.load --clients 1 4 8 12 16 --seconds 15
	$(PY) -m bench.load --clients 1 8 --seconds 15 --compare gunicorn proxy werkzeug --rounds 3
	$(PY) -m bench.calibration
	$(PY) -m bench.page_flow

clean:
	rm -rf $(VENV) .pytest_cache node_modules
