"""Rate limits: flask-limiter with shared storage (Redis in production, memory:// by default)."""
from portal.extensions import limiter

DEFAULT_LIMITS = {
    "RATELIMIT_LOGIN": "10/minute;50/hour",
    "RATELIMIT_OAUTH": "30/minute",
    "RATELIMIT_API": "120/minute",
}


def init_app(app):
    for key, value in DEFAULT_LIMITS.items():
        app.config.setdefault(key, value)
    app.config.setdefault("RATELIMIT_STRATEGY", "moving-window")
    app.config.setdefault("RATELIMIT_HEADERS_ENABLED", True)
    app.config.setdefault("RATELIMIT_SWALLOW_ERRORS", True)
    app.config.setdefault("RATELIMIT_IN_MEMORY_FALLBACK_ENABLED", True)
    limiter.init_app(app)


def configured(name):
    """A callable limit string read from config at request time (tests and operators change it)."""
    from flask import current_app

    return lambda: current_app.config[name]
