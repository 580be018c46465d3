"""A logged-in admin for the tests: the JSON API over real HTTP and the '/admin' Socket.IO namespace."""
from __future__ import annotations

import time

import requests
import socketio

from tests.conftest import HANG_GUARD_S

PASSWORD = "correct horse battery staple"
ADMIN_ENV = {"SIGN2SOUND_ADMIN_PASSWORD": PASSWORD, "SIGN2SOUND_ADMIN_PASSWORD_HASH": ""}
FINISHED = ("succeeded", "failed", "cancelled", "interrupted")


class AdminClient:
    def __init__(self, url: str):
        self.url = url
        self.http = requests.Session()
        self.csrf: str | None = None

    def login(self, password: str = PASSWORD) -> "AdminClient":
        r = self.http.post(self.url + "/admin/login", json={"password": password}, timeout=10)
        assert r.status_code == 200, r.text
        self.csrf = r.json()["csrf_token"]
        return self

    def get(self, path: str) -> requests.Response:
        return self.http.get(self.url + path, timeout=10)

    def post(self, path: str, json=None, csrf: bool = True) -> requests.Response:
        headers = {"X-CSRFToken": self.csrf} if csrf and self.csrf else {}
        return self.http.post(self.url + path, json=json, headers=headers, timeout=30)

    def start_job(self, **params) -> int:
        r = self.post("/api/admin/jobs", params)
        assert r.status_code == 201, r.text
        return r.json()["id"]

    def job(self, job_id: int) -> dict:
        r = self.get(f"/api/admin/jobs/{job_id}")
        assert r.status_code == 200, r.text
        return r.json()

    def wait_job(self, job_id: int, until=FINISHED, timeout: float = HANG_GUARD_S, need_pid: bool = False) -> dict:
        """Poll until the job's status is in `until` (a deadline for a hung job, not a speed check)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.job(job_id)
            if job["status"] in until and (job["pid"] or not need_pid):
                return job
            time.sleep(0.1)
        raise AssertionError(f"job {job_id} never reached {until}: {self.job(job_id)}")

    def socket(self, namespace: str = "/admin", handlers: dict | None = None) -> socketio.Client:
        """A connected Socket.IO client carrying this admin's session cookie; `handlers`: event -> function."""
        cookie = "; ".join(f"{c.name}={c.value}" for c in self.http.cookies)
        client = socketio.Client(reconnection=False)
        for event, handler in (handlers or {}).items():
            client.on(event, handler, namespace=namespace)
        client.connect(self.url, namespaces=[namespace], headers={"Cookie": cookie}, transports=["websocket"],
                       wait_timeout=10)
        return client
