"""Settings from the environment, with embedded development defaults and production checks.

Every setting the portal reads is listed in ``SETTINGS`` so ``flask portal check-config`` can
print what is in effect. Development generates missing keys into ``instance/`` (mode 0600) and
says so once; production refuses to start when a key is missing or a URL is not https.
"""
import base64
import os
import secrets
import sys
from dataclasses import dataclass

DEFAULT_PORT_URL = "http://127.0.0.1:5000"


class ConfigError(RuntimeError):
    """The configuration cannot be used; the message names the variable to fix."""


@dataclass(frozen=True)
class Setting:
    env: str
    key: str
    default: object = None
    secret: bool = False
    kind: type = str


SETTINGS = [
    Setting("PORTAL_ENV", "PORTAL_ENV", "development"),
    Setting("PORTAL_DATABASE_URL", "SQLALCHEMY_DATABASE_URI", None),
    Setting("PORTAL_SECRET_KEY", "SECRET_KEY", None, secret=True),
    Setting("PORTAL_ENCRYPTION_KEYS", "ENCRYPTION_KEYS", None, secret=True),
    Setting("PORTAL_AUDIT_KEY", "AUDIT_KEY", None, secret=True),
    Setting("PORTAL_RATELIMIT_STORAGE_URI", "RATELIMIT_STORAGE_URI", "memory://", secret=True),
    # Limit strings and strategy; None means the default in portal/ratelimit.py.
    *(Setting(f"PORTAL_{key}", key, None) for key in (
        "RATELIMIT_STRATEGY", "RATELIMIT_LOGIN", "RATELIMIT_INVITE", "RATELIMIT_OAUTH",
        "RATELIMIT_TOKEN_ACTIONS", "RATELIMIT_API", "RATELIMIT_TOOLS")),
    Setting("PORTAL_TRUSTED_PROXIES", "TRUSTED_PROXIES", 0, kind=int),
    Setting("OAUTH_REDIRECT_URI", "OAUTH_REDIRECT_URI", DEFAULT_PORT_URL + "/auth/oauth/callback"),
    Setting("FRONTEND_URL", "FRONTEND_URL", DEFAULT_PORT_URL),
    Setting("PORTAL_INVITE_TTL_HOURS", "INVITE_TTL_HOURS", 7 * 24, kind=int),
]

# Generated in development when the variable is absent: file name and generator.
GENERATED_KEYS = {
    "SECRET_KEY": ("secret_key", lambda: secrets.token_urlsafe(48)),
    "ENCRYPTION_KEYS": ("encryption_keys", lambda: new_keyring_entry("k1")),
    "AUDIT_KEY": ("audit_key", lambda: secrets.token_urlsafe(48)),
}


def new_keyring_entry(key_id):
    """A fresh ``id:base64url(32 random bytes)`` entry for PORTAL_ENCRYPTION_KEYS."""
    return f"{key_id}:" + base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")


def load(app, overrides):
    """Fill ``app.config`` from defaults, then the environment, then ``overrides``."""
    app.config.update(
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_NAME="portal_session",
        REMEMBER_COOKIE_NAME="portal_remember",
        REMEMBER_COOKIE_HTTPONLY=True,
        REMEMBER_COOKIE_SAMESITE="Lax",
        REMEMBER_COOKIE_DURATION=14 * 24 * 3600,
        REMEMBER_COOKIE_REFRESH_EACH_REQUEST=False,
        # portal.security.csrf_guard runs the CSRF check (API-key requests are exempt there).
        WTF_CSRF_CHECK_DEFAULT=False,
        MAX_CONTENT_LENGTH=1024 * 1024,
        SQLALCHEMY_ENGINE_OPTIONS={"pool_pre_ping": True},
        WTF_CSRF_TIME_LIMIT=None,
        WTF_CSRF_SSL_STRICT=False,
    )
    for setting in SETTINGS:
        raw = os.environ.get(setting.env)
        if raw not in (None, ""):
            app.config[setting.key] = setting.kind(raw)
        elif setting.key not in app.config or app.config[setting.key] is None:
            app.config[setting.key] = setting.default
    app.config.update(overrides)
    production = app.config["PORTAL_ENV"] == "production"
    app.config.setdefault("PRODUCTION", production)
    app.config["SESSION_COOKIE_SECURE"] = production
    app.config["REMEMBER_COOKIE_SECURE"] = production
    if not app.config.get("SQLALCHEMY_DATABASE_URI"):
        os.makedirs(app.instance_path, exist_ok=True)
        app.config["SQLALCHEMY_DATABASE_URI"] = "sqlite:///" + os.path.join(app.instance_path, "portal.db")
    app.config["SQLALCHEMY_DATABASE_URI"] = normalise_database_url(app.config["SQLALCHEMY_DATABASE_URI"])
    if production:
        check_production(app.config)
    else:
        fill_development_keys(app)


def normalise_database_url(url):
    """Use psycopg 3 for PostgreSQL whatever scheme spelling the operator chose."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def fill_development_keys(app):
    """Read or create each missing key under instance/ (0600); announce a creation once."""
    for key, (filename, generate) in GENERATED_KEYS.items():
        if app.config.get(key):
            continue
        path = os.path.join(app.instance_path, filename)
        os.makedirs(app.instance_path, exist_ok=True)
        try:
            with open(path) as handle:
                app.config[key] = handle.read().strip()
            continue
        except FileNotFoundError:
            pass
        value = generate()
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(value + "\n")
        app.config[key] = value
        print(f"portal: generated a development {key.lower().replace('_', ' ')} in {path}", file=sys.stderr)


def check_production(config):
    """Refuse to start production with missing keys or plain-http public URLs."""
    for setting in SETTINGS:
        if setting.secret and setting.key != "RATELIMIT_STORAGE_URI" and not config.get(setting.key):
            raise ConfigError(f"{setting.env} must be set in production")
    check_keys_differ(config)
    if len(config["SECRET_KEY"]) < 32 or len(config["AUDIT_KEY"]) < 32:
        raise ConfigError("PORTAL_SECRET_KEY and PORTAL_AUDIT_KEY need at least 32 characters")
    for name in ("OAUTH_REDIRECT_URI", "FRONTEND_URL"):
        if not str(config.get(name) or "").startswith("https://"):
            raise ConfigError(f"{name} must be an https:// URL in production")


def check_keys_differ(config):
    """Session signing, audit chain and token sealing each need their own key material."""
    sealing = {config["ENCRYPTION_KEYS"]} | {entry.partition(":")[2].strip() for entry in config["ENCRYPTION_KEYS"].split(",")}
    if config["SECRET_KEY"] == config["AUDIT_KEY"]:
        raise ConfigError("PORTAL_SECRET_KEY and PORTAL_AUDIT_KEY must differ")
    for env, key in (("PORTAL_SECRET_KEY", "SECRET_KEY"), ("PORTAL_AUDIT_KEY", "AUDIT_KEY")):
        if config[key] in sealing:
            raise ConfigError(f"{env} must differ from the keys in PORTAL_ENCRYPTION_KEYS")


def masked(value):
    """Show that a secret is set without showing it."""
    if not value:
        return "(not set)"
    return f"set ({len(str(value))} characters, hidden)"


def describe(app):
    """Lines for ``flask portal check-config``: every setting in effect, secrets masked."""
    lines = []
    for setting in SETTINGS:
        value = app.config.get(setting.key)
        if setting.secret and not (setting.key == "RATELIMIT_STORAGE_URI" and value == "memory://"):
            shown = masked(value)
        elif setting.key == "SQLALCHEMY_DATABASE_URI":
            shown = mask_url_password(value)
        else:
            shown = value
        lines.append(f"{setting.env} = {shown}")
    return lines


def mask_url_password(url):
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "(unparseable URL)"
