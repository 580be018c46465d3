"""The admin's access rules and JSON API against a real server: login, CSRF, rate limit, refusals, models."""
from __future__ import annotations

import re

import pytest
import requests
import socketio
from werkzeug.security import generate_password_hash

from tests.admin_client import PASSWORD, AdminClient
from ml.checkpoint import load_checkpoint
from ml.config import data_path
from ml.datasets import SOURCES
from ml.train import parse_args as train_args
from tests.conftest import SHIPPED_CHECKPOINT, Server

API_ROUTES = [("GET", "/api/admin/jobs"), ("POST", "/api/admin/jobs"), ("GET", "/api/admin/jobs/1"),
              ("POST", "/api/admin/jobs/1/cancel"), ("GET", "/api/admin/models"),
              ("POST", "/api/admin/models/shipped/activate"), ("GET", "/api/admin/datasets")]


@pytest.fixture
def admin(admin_server):
    return AdminClient(admin_server.url).login()


@pytest.mark.parametrize("method,path", API_ROUTES)
def test_api_refuses_anonymous_with_401_json(admin_server, method, path):
    r = requests.request(method, admin_server.url + path, json={}, timeout=10)
    assert r.status_code == 401
    assert r.json()["error"] == "login required"


def test_admin_page_redirects_anonymous_browsers_to_login(admin_server):
    r = requests.get(admin_server.url + "/admin", headers={"Accept": "text/html"}, allow_redirects=False, timeout=10)
    assert r.status_code == 302
    assert r.headers["Location"].startswith("/admin/login")


def test_admin_socket_namespace_refuses_anonymous(admin_server):
    client = socketio.Client(reconnection=False)
    with pytest.raises(socketio.exceptions.ConnectionError):
        client.connect(admin_server.url, namespaces=["/admin"], transports=["websocket"], wait_timeout=10)
    client.disconnect()


def test_admin_socket_namespace_accepts_a_logged_in_admin(admin):
    client = admin.socket("/admin")
    try:
        assert "/admin" in client.namespaces
    finally:
        client.disconnect()


def test_json_login_returns_a_csrf_token_and_a_strict_cookie(admin_server):
    r = requests.post(admin_server.url + "/admin/login", json={"password": PASSWORD}, timeout=10)
    assert r.status_code == 200
    assert len(r.json()["csrf_token"]) >= 32
    cookie = r.headers["Set-Cookie"]
    assert "HttpOnly" in cookie
    assert re.search(r"SameSite=(Lax|Strict)", cookie)


def test_wrong_or_missing_password_is_refused(admin_server):
    r = requests.post(admin_server.url + "/admin/login", json={"password": "nope"}, timeout=10)
    assert r.status_code == 401 and r.json()["error"] == "wrong password"
    r = requests.post(admin_server.url + "/admin/login", json={}, timeout=10)
    assert r.status_code == 400 and r.json()["field"] == "password"
    # a failed login grants nothing
    http = requests.Session()
    http.post(admin_server.url + "/admin/login", json={"password": "nope"}, timeout=10)
    assert http.get(admin_server.url + "/api/admin/jobs", timeout=10).status_code == 401


def test_state_changes_need_the_sessions_csrf_token(admin_server, admin):
    jobs_before = admin.get("/api/admin/jobs").json()["jobs"]  # a shared server: other tests add jobs
    body = {"epochs": 1, "lr": 0.01, "batch_size": 8, "datasets": ["asl_ai"]}
    r = admin.post("/api/admin/jobs", body, csrf=False)
    assert r.status_code == 403 and "CSRF" in r.json()["error"]
    r = admin.http.post(admin_server.url + "/api/admin/jobs", json=body, headers={"X-CSRFToken": "forged"}, timeout=10)
    assert r.status_code == 403
    other = AdminClient(admin_server.url).login()  # a valid token, but another session's
    r = admin.http.post(admin_server.url + "/api/admin/models/shipped/activate", headers={"X-CSRFToken": other.csrf},
                        timeout=10)
    assert r.status_code == 403
    assert len(admin.get("/api/admin/jobs").json()["jobs"]) == len(jobs_before)  # nothing was started


def test_logout_needs_csrf_and_revokes_the_cookie(admin_server):
    admin = AdminClient(admin_server.url).login()
    stolen = dict(admin.http.cookies)
    assert admin.post("/admin/logout", csrf=False).status_code == 403
    assert admin.get("/api/admin/models").status_code == 200
    assert admin.post("/admin/logout").json() == {"ok": True}
    assert admin.get("/api/admin/models").status_code == 401
    # the old cookie is dead too, not just forgotten by this client
    assert requests.get(admin_server.url + "/api/admin/models", cookies=stolen, timeout=10).status_code == 401


def test_browser_form_login_with_the_pages_token(admin_server):
    http = requests.Session()
    page = http.get(admin_server.url + "/admin/login", timeout=10)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    r = http.post(admin_server.url + "/admin/login", data={"password": PASSWORD}, allow_redirects=False, timeout=10)
    assert r.status_code == 403  # no token: a cross-site form cannot log anyone in
    r = http.post(admin_server.url + "/admin/login", data={"password": "nope", "csrf_token": token}, timeout=10)
    assert r.status_code == 401 and "Wrong password" in r.text
    r = http.post(admin_server.url + "/admin/login",
                  data={"password": PASSWORD, "csrf_token": token, "next": "//evil.example"}, allow_redirects=False,
                  timeout=10)
    assert r.status_code == 302 and r.headers["Location"] == "/admin"  # no open redirect
    page = http.get(admin_server.url + "/admin", timeout=10)
    assert page.status_code == 200
    # The admin pages name their icon (a browser asks for /favicon.ico, a 404, when a page names none).
    icon = re.search(r'<link rel="icon" href="([^"]+)"', page.text).group(1)
    assert http.get(admin_server.url + icon, timeout=10).headers["Content-Type"].startswith("image/svg")
    assert re.search(r'<meta name="csrf-token" content="[^"]+">', page.text)
    # every script is a file (the CSP allows no inline script)
    scripts = re.findall(r"<script[^>]*>", page.text)
    assert scripts and all("src=" in s for s in scripts)
    for src in re.findall(r'<script src="([^"]+)"', page.text):
        assert http.get(admin_server.url + src, timeout=10).status_code == 200


@pytest.mark.parametrize("change,field", [
    ({"epochs": 0}, "epochs"), ({"epochs": "ten"}, "epochs"), ({"epochs": True}, "epochs"),
    ({"lr": 0}, "lr"), ({"lr": 2}, "lr"), ({"lr": "fast"}, "lr"),
    ({"batch_size": 0}, "batch_size"), ({"batch_size": 1.5}, "batch_size"),
    ({"datasets": []}, "datasets"), ({"datasets": "asl_ai"}, "datasets"), ({"datasets": ["nope"]}, "datasets"),
    ({"datasets": ["../../etc/passwd"]}, "datasets"), ({"datasets": ["asl_ai", "asl_ai"]}, "datasets"),
    ({"base": "../../etc/passwd"}, "base"), ({"base": "job-999"}, "base"), ({"base": 3}, "base"),
    ({"batchsize": 8}, "batchsize"), ({"seed": -1}, "seed"),
])
def test_bad_job_parameters_get_400_naming_the_field(admin, change, field):
    body = {"epochs": 1, "lr": 0.01, "batch_size": 8, "datasets": ["asl_ai"], **change}
    r = admin.post("/api/admin/jobs", body)
    assert r.status_code == 400, r.text
    assert r.json()["field"] == field
    assert field in r.json()["error"]


def trainer_defaults():
    cli = train_args(["--datasets", "-", "--out", "-"])
    return {"epochs": cli.epochs, "lr": cli.lr, "batch_size": cli.batch_size, "seed": cli.seed}


def test_omitted_job_fields_take_the_trainers_defaults_and_the_page_shows_them(admin, config):
    present = [n for n in SOURCES if data_path(config, n).exists()]
    if not present:
        pytest.skip("no shared source is on this machine to default to")
    r = admin.post("/api/admin/jobs", {"epochs": 1})
    assert r.status_code == 201, r.text
    job_id = r.json()["id"]
    assert admin.post(f"/api/admin/jobs/{job_id}/cancel").status_code in (200, 409)  # only its parameters matter
    assert r.json()["job"]["params"] == {**trainer_defaults(), "epochs": 1, "datasets": present, "base": None}
    assert admin.wait_job(job_id)["status"] in ("cancelled", "failed", "succeeded")

    page = admin.get("/admin").text  # the job form, filled with the same defaults
    for name, value in trainer_defaults().items():
        assert re.search(rf'name="{name}"[^>]* value="{value}"', page), name
    assert f'data-defaults="{" ".join(present)}"' in page


@pytest.mark.parametrize("body,field", [
    ({"lr": 0}, "lr"), ({"lr": None}, "lr"), ({"epochs": "ten"}, "epochs"), ({"batch_size": None}, "batch_size"),
    ({"seed": -1}, "seed"), ({"seed": None}, "seed"), ({"datasets": []}, "datasets"), ({"datasets": None}, "datasets"),
])
def test_a_wrong_value_beside_defaults_is_still_refused(admin, body, field):
    r = admin.post("/api/admin/jobs", body)
    assert r.status_code == 400 and r.json()["field"] == field, r.text


@pytest.fixture(scope="module")
def hashed_server_without_data(tmp_path_factory):
    """One server for the two settings the shared admin server lacks (a server start is seconds of CPU): the admin
    password given only as a hash, with at most 3 failed logins, and a data root without any shared source."""
    root = tmp_path_factory.mktemp("hashed")
    server = Server(root / "instance", env={"SIGN2SOUND_ADMIN_PASSWORD": "",
                                            "SIGN2SOUND_ADMIN_PASSWORD_HASH": generate_password_hash(HASHED_PASSWORD),
                                            "SIGN2SOUND_ADMIN_LOGIN_ATTEMPTS": "3",
                                            "SIGN2SOUND_DATA_ROOT": str(root / "no-data")}).start()
    yield server
    server.stop()


HASHED_PASSWORD = "s3cret-hash"


def test_with_no_shared_source_the_datasets_default_is_refused_clearly(hashed_server_without_data):
    server = hashed_server_without_data
    r = AdminClient(server.url).login(HASHED_PASSWORD).post("/api/admin/jobs", {"epochs": 1})
    assert r.status_code == 400 and r.json()["field"] == "datasets"
    assert "no shared source" in r.json()["error"]


def test_a_job_body_must_be_a_json_object(admin):
    r = admin.http.post(admin.url + "/api/admin/jobs", data="epochs=1",
                        headers={"X-CSRFToken": admin.csrf, "Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 400 and r.json()["field"] == "body"
    r = admin.post("/api/admin/jobs", [1, 2])
    assert r.status_code == 400 and r.json()["field"] == "body"


def test_unknown_job_is_404(admin):
    assert admin.get("/api/admin/jobs/999").status_code == 404
    assert admin.post("/api/admin/jobs/999/cancel").status_code == 404


def test_models_lists_the_shipped_model_as_live(admin):
    data = admin.get("/api/admin/models").json()
    assert data["active"] == "shipped"
    shipped = [m for m in data["models"] if m["id"] == "shipped"]
    assert shipped and shipped[0]["active"] is True
    metrics = shipped[0]["metrics"]
    assert {k: v for k, v in metrics.items() if k != "unseen_signer_acc"} == \
        load_checkpoint(SHIPPED_CHECKPOINT)[1].get("metrics", {})
    # Beside the validation accuracy (the signers it trained on), the model card's figure for people it never saw.
    assert 0.5 < metrics["unseen_signer_acc"] < metrics["val_acc"] - 0.05, metrics
    assert requests.get(admin.url + "/api/status", timeout=10).json()["model"] == "shipped"


@pytest.mark.parametrize("model_id,status", [("evil", 400), ("job-0", 400), ("job-1x", 400), ("job-999", 404),
                                             ("..%2F..%2Fetc%2Fpasswd", 404)])
def test_activate_refuses_bad_or_unknown_ids(admin, model_id, status):
    r = admin.post(f"/api/admin/models/{model_id}/activate")
    assert r.status_code == status
    assert requests.get(admin.url + "/api/status", timeout=10).json()["model"] == "shipped"


def test_activate_the_shipped_model(admin):
    r = admin.post("/api/admin/models/shipped/activate")
    assert r.status_code == 200 and r.json()["model"] == "shipped"


def test_datasets_lists_the_shared_sources(admin):
    names = {d["name"]: d for d in admin.get("/api/admin/datasets").json()["datasets"]}
    assert {"kaggle", "ayuraj", "asl_ai", "bisonhacks"} <= set(names)
    assert all(names[n]["kind"] == "shared" for n in ("kaggle", "asl_ai"))


def test_admin_is_disabled_without_a_password(server):  # the shared server runs with no password (conftest)
    r = requests.post(server.url + "/admin/login", json={"password": ""}, timeout=10)
    assert r.status_code == 503 and "SIGN2SOUND_ADMIN_PASSWORD" in r.json()["error"]
    r = requests.post(server.url + "/admin/login", json={"password": "admin"}, timeout=10)
    assert r.status_code == 503  # no default password
    page = requests.get(server.url + "/admin", headers={"Accept": "text/html"}, timeout=10)
    assert page.status_code == 503 and "disabled" in page.text
    assert requests.get(server.url + "/api/admin/jobs", timeout=10).status_code == 503
    assert requests.get(server.url + "/api/status", timeout=10).status_code == 200  # the live app still serves


def test_password_hash_login_and_failed_logins_rate_limited(hashed_server_without_data):
    """Last of the tests on this server: it leaves logins locked out."""
    server = hashed_server_without_data
    AdminClient(server.url).login(HASHED_PASSWORD)
    for _ in range(3):
        r = requests.post(server.url + "/admin/login", json={"password": "guess"}, timeout=10)
        assert r.status_code == 401
    r = requests.post(server.url + "/admin/login", json={"password": "guess"}, timeout=10)
    assert r.status_code == 429 and int(r.headers["Retry-After"]) > 0
    # while locked out, even the right password is refused: guessing gains nothing
    r = requests.post(server.url + "/admin/login", json={"password": HASHED_PASSWORD}, timeout=10)
    assert r.status_code == 429
