"""Rate-limit storage outages: pages keep serving, sign-in keeps a per-process limit, admins see it."""
import logging
import shutil
import subprocess
import time

import pytest
import redis
from flask import Blueprint

from portal import ratelimit
from tests.conftest import PASSWORD
from tests.gunicorn_support import free_port
from tests.support import need

probe = Blueprint("api_outage_probe", __name__, url_prefix="/api/outage-probe")
OUTAGE = "has been unreachable since"


@probe.get("/ping")
@ratelimit.limit_api
def ping():
    return {"ok": True}


class RedisServer:
    """A private redis-server on a free port, so a test can stop and restart it."""

    def __init__(self, directory):
        self.binary = shutil.which("redis-server")
        self.directory, self.port, self.process = directory, free_port(), None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self):
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.directory)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(100):
            with redis.Redis.from_url(self.url) as client:
                try:
                    client.ping()
                    return
                except redis.ConnectionError:
                    time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


@pytest.fixture
def app_config(app_config):
    app_config.update(RATELIMIT_ENABLED=True, RATELIMIT_LOGIN="3/minute", RATELIMIT_API="3/minute")
    return app_config


@pytest.fixture
def unreachable_storage(app_config):
    app_config["RATELIMIT_STORAGE_URI"] = f"redis://127.0.0.1:{free_port()}/0"


@pytest.fixture
def own_redis(app_config, tmp_path):
    server = RedisServer(tmp_path)
    if not server.binary:
        need("redis-server", "the binary is not on PATH")
    server.start()
    app_config["RATELIMIT_STORAGE_URI"] = server.url
    yield server
    server.stop()


def sign_in_attempt(client, email, ip, password="wrong password!"):
    token = client.csrf_token("/login")
    return client.post("/login", data={"email": email, "password": password, "csrf_token": token},
                       environ_base={"REMOTE_ADDR": ip})


def outage_logs(caplog, level):
    return [r for r in caplog.records if r.name == "portal.ratelimit" and r.levelno == level]


def test_storage_outage_keeps_pages_and_a_process_login_limit(unreachable_storage, app, caplog):
    app.register_blueprint(probe)
    client = app.test_client()
    for _ in range(5):
        assert client.get("/login").status_code == 200
    statuses = [sign_in_attempt(client, f"user{n}@a.test", "10.0.0.1").status_code for n in range(5)]
    assert statuses == [401, 401, 401, 429, 429]
    for _ in range(5):  # the API fails open while its shared count is unavailable
        assert client.get("/api/outage-probe/ping", environ_base={"REMOTE_ADDR": "10.0.0.2"}).status_code == 200
    status = ratelimit.storage_status(app)
    assert status["backend"] == "redis" and status["healthy"] is False and status["since"] is not None
    assert OUTAGE in status["message"]
    assert len(outage_logs(caplog, logging.ERROR)) == 1


def test_storage_outage_banner_shows_to_admins_only(unreachable_storage, app, make_user):
    admin = make_user("admin@a.test", role="admin")
    make_user("member@a.test", team=admin.team)
    admin_client, member_client = app.test_client(), app.test_client()
    assert sign_in_attempt(admin_client, "admin@a.test", "10.0.0.3", PASSWORD).status_code == 303
    assert sign_in_attempt(member_client, "member@a.test", "10.0.0.4", PASSWORD).status_code == 303
    assert OUTAGE in admin_client.get("/account").get_data(as_text=True)
    assert OUTAGE not in member_client.get("/account").get_data(as_text=True)


def test_storage_status_reports_healthy_memory_storage(app):
    status = ratelimit.storage_status(app)
    assert status == {"backend": "memory", "healthy": True, "since": None, "message": status["message"]}
    assert "separately by each worker" in status["message"]


def test_storage_outage_is_logged_once_and_ends_when_redis_returns(own_redis, app, caplog):
    client = app.test_client()
    assert sign_in_attempt(client, "a@a.test", "10.0.5.1").status_code == 401
    assert ratelimit.storage_status(app)["healthy"] is True
    own_redis.stop()
    for n in range(4):
        assert sign_in_attempt(client, f"b{n}@a.test", f"10.0.6.{n}").status_code == 401
    assert ratelimit.storage_status(app)["healthy"] is False
    own_redis.start()
    deadline = time.monotonic() + 8
    while not ratelimit.storage_status(app)["healthy"] and time.monotonic() < deadline:
        sign_in_attempt(client, "c@a.test", "10.0.7.1")  # the limiter re-checks its storage on use
        time.sleep(0.2)
    assert ratelimit.storage_status(app)["healthy"] is True
    assert len(outage_logs(caplog, logging.ERROR)) == 1
    assert len(outage_logs(caplog, logging.WARNING)) == 1
