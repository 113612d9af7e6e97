"""Production refuses unsafe settings; development makes its own keys; check-config hides secrets."""
import os
import stat

import pytest

from portal import create_app
from portal.config import SETTINGS, ConfigError
from portal.extensions import db
from tests.support import TEST_KEYS

HTTPS = {"OAUTH_REDIRECT_URI": "https://portal.example/auth/oauth/callback", "FRONTEND_URL": "https://portal.example"}


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    for setting in SETTINGS:
        monkeypatch.delenv(setting.env, raising=False)


@pytest.fixture
def build():
    """create_app, closing each app's database connections after the test."""
    apps = []

    def factory(config):
        apps.append(create_app(config))
        return apps[-1]

    yield factory
    for app in apps:
        with app.app_context():
            db.engine.dispose()


@pytest.fixture
def production(database_url):
    return {**TEST_KEYS, **HTTPS, "PORTAL_ENV": "production", "SQLALCHEMY_DATABASE_URI": database_url,
            "RATELIMIT_STORAGE_URI": "memory://", "RATELIMIT_ENABLED": False}


@pytest.mark.parametrize("key, env", [("SECRET_KEY", "PORTAL_SECRET_KEY"),
                                      ("ENCRYPTION_KEYS", "PORTAL_ENCRYPTION_KEYS"),
                                      ("AUDIT_KEY", "PORTAL_AUDIT_KEY")])
def test_create_app_refuses_production_when_key_missing(production, key, env):
    del production[key]
    with pytest.raises(ConfigError, match=env):
        create_app(production)


def test_create_app_refuses_production_when_secret_and_audit_keys_equal(production):
    production["AUDIT_KEY"] = production["SECRET_KEY"]
    with pytest.raises(ConfigError, match="PORTAL_AUDIT_KEY"):
        create_app(production)


@pytest.mark.parametrize("key, env", [("SECRET_KEY", "PORTAL_SECRET_KEY"), ("AUDIT_KEY", "PORTAL_AUDIT_KEY")])
def test_create_app_refuses_production_when_key_reuses_sealing_key(production, key, env):
    sealing_material = production["ENCRYPTION_KEYS"].partition(":")[2]
    production[key] = sealing_material
    with pytest.raises(ConfigError, match=f"{env} must differ from the keys in PORTAL_ENCRYPTION_KEYS"):
        create_app(production)
    production[key] = production["ENCRYPTION_KEYS"]
    with pytest.raises(ConfigError, match=env):
        create_app(production)


@pytest.mark.parametrize("name", ["OAUTH_REDIRECT_URI", "FRONTEND_URL"])
def test_create_app_refuses_production_when_url_not_https(production, name):
    production[name] = HTTPS[name].replace("https://", "http://")
    with pytest.raises(ConfigError, match=name):
        create_app(production)


def test_create_app_refuses_production_when_keys_come_from_environment_unsafely(production, monkeypatch):
    del production["SECRET_KEY"]
    monkeypatch.setenv("PORTAL_SECRET_KEY", "short")
    with pytest.raises(ConfigError, match="PORTAL_SECRET_KEY"):
        create_app(production)


def test_create_app_starts_production_with_safe_settings(production, build):
    app = build(production)
    assert app.config["SESSION_COOKIE_SECURE"] and app.config["REMEMBER_COOKIE_SECURE"]


def test_login_sets_secure_httponly_lax_cookies_in_production(production, make_user, build):
    make_user("admin@a.test", role="admin")
    app = build(production)
    from tests.support import PortalClient

    app.test_client_class = PortalClient
    client = app.test_client()
    response = client.submit("/login", {"email": "admin@a.test", "password": "correct horse battery staple",
                                        "remember": "on"})
    assert response.status_code == 303
    cookies = {header.split("=", 1)[0]: header for header in response.headers.getlist("Set-Cookie")}
    for name in ("portal_session", "portal_remember"):
        flags = [flag.strip().lower() for flag in cookies[name].split(";")]
        assert "secure" in flags and "httponly" in flags and "samesite=lax" in flags, cookies[name]


def test_login_sets_httponly_lax_cookies_without_secure_in_development(client, auth, admin):
    response = client.submit("/login", {"email": "admin@a.test", "password": "correct horse battery staple",
                                        "remember": "on"})
    cookies = {header.split("=", 1)[0]: header.lower() for header in response.headers.getlist("Set-Cookie")}
    assert set(cookies) >= {"portal_session", "portal_remember"}
    for header in cookies.values():
        assert "httponly" in header and "samesite=lax" in header and "secure" not in header


def test_remember_cookie_settings_are_explicit(app):
    assert app.config["REMEMBER_COOKIE_NAME"] == "portal_remember"
    assert app.config["REMEMBER_COOKIE_DURATION"] == 14 * 24 * 3600
    assert app.config["REMEMBER_COOKIE_REFRESH_EACH_REQUEST"] is False
    assert app.config["REMEMBER_COOKIE_HTTPONLY"] and app.config["REMEMBER_COOKIE_SAMESITE"] == "Lax"


def test_create_app_generates_missing_development_keys_once(database_url, tmp_path, capsys, build):
    instance = tmp_path / "instance"
    config = {"SQLALCHEMY_DATABASE_URI": database_url, "INSTANCE_PATH": str(instance), "TESTING": True}
    first = build(dict(config))
    announced = capsys.readouterr().err
    for filename, key in (("secret_key", "SECRET_KEY"), ("encryption_keys", "ENCRYPTION_KEYS"),
                          ("audit_key", "AUDIT_KEY")):
        path = instance / filename
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert path.read_text().strip() == first.config[key]
        assert str(path) in announced
    second = build(dict(config))
    assert capsys.readouterr().err == ""
    assert all(second.config[k] == first.config[k] for k in ("SECRET_KEY", "ENCRYPTION_KEYS", "AUDIT_KEY"))
    assert len({first.config["SECRET_KEY"], first.config["AUDIT_KEY"], first.config["ENCRYPTION_KEYS"]}) == 3


def test_check_config_masks_secrets_and_shows_values(database_url, build):
    url = "postgresql://portal:db-password-xyz@db.internal:5432/portal"
    app = build({**TEST_KEYS, "SQLALCHEMY_DATABASE_URI": url, "TESTING": True,
                      "FRONTEND_URL": "http://127.0.0.1:5000", "RATELIMIT_STORAGE_URI": "redis://:redis-pass-xyz@cache:6379/0"})
    result = app.test_cli_runner().invoke(args=["portal", "check-config"])
    assert result.exit_code == 0, result.output
    for secret in (*TEST_KEYS.values(), "db-password-xyz", "redis-pass-xyz"):
        assert secret not in result.output
    assert "PORTAL_SECRET_KEY = set (" in result.output
    assert "PORTAL_AUDIT_KEY = set (" in result.output
    assert "PORTAL_ENCRYPTION_KEYS = set (" in result.output
    assert "PORTAL_RATELIMIT_STORAGE_URI = set (" in result.output
    assert "FRONTEND_URL = http://127.0.0.1:5000" in result.output
    assert "PORTAL_ENV = development" in result.output
    assert "PORTAL_DATABASE_URL = postgresql+psycopg://portal:***@db.internal:5432/portal" in result.output
