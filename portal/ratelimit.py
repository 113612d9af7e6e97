"""Rate limits: flask-limiter on the routes an attacker would hammer, counted in shared storage.

Each route family has one decorator; put it under the route decorator::

    @bp.route("/login", methods=["GET", "POST"])
    @ratelimit.limit_login
    def login(): ...

- sign-in POST (``auth.login``): ``limit_login``, per IP and per e-mail (RATELIMIT_LOGIN);
- the invitation page and its acceptance (``auth.invite``): ``limit_invite``, per IP
  (RATELIMIT_INVITE);
- OAuth authorize and callback (``oauth.authorize``, ``oauth.callback``): ``limit_oauth``;
- refresh-now and revoke of a connection (``settings.refresh``, ``settings.revoke``,
  ``oauth.revoke``): ``limit_token_actions`` (RATELIMIT_TOKEN_ACTIONS);
- every ``/api/`` view (``api.*``): ``limit_api`` (RATELIMIT_API);
- MCP tool calls (``*.call_tool*``): ``limit_tools`` (RATELIMIT_TOOLS).

The other families count per IP and per signed-in user, and each family shares one budget
across its routes. The user key reads ``flask_login.current_user`` when the view is called, so
API authentication must have set it by then (request loader or a blueprint ``before_request``);
anonymous callers are counted by IP only. Limits are strings such as ``"10/minute;50/hour"``
from config (env ``PORTAL_RATELIMIT_LOGIN`` ...), read per request. ``SENSITIVE_ENDPOINTS``
maps endpoint names to the family they must carry; ``uncovered_endpoints(app)`` reports those
that do not (the test suite asserts it is empty).

Storage is ``RATELIMIT_STORAGE_URI`` (``memory://`` per process, Redis shared by all workers)
with a moving window (or ``sliding-window-counter``) for every family. If the storage fails,
flask-limiter switches to per-process memory: families with ``fallback`` keep counting there,
the API and tool-call limits are off until it returns (fail open). ``storage_status(app)`` tells
admins; the outage is logged once per process when it starts and when it ends.

A 429 (``portal.ratelimit_errors``) carries ``Retry-After`` and is audited, at most once a
minute per endpoint and key.
"""
import logging
from dataclasses import dataclass
from fnmatch import fnmatchcase

from flask import current_app, has_request_context, request
from flask_limiter.util import get_qualified_name
from flask_login import current_user
from limits import parse_many

from portal import accounts, audit
from portal.config import ConfigError
from portal.extensions import limiter
from portal.models import utcnow

log = logging.getLogger("portal.ratelimit")
EXTENSION = "portal.ratelimit"
WINDOW_STRATEGIES = ("moving-window", "sliding-window-counter")
DEFAULT_STRATEGY = "moving-window"


def by_ip():
    """The client address (the right-most trusted proxy hop when PORTAL_TRUSTED_PROXIES is set)."""
    return "ip:" + (request.remote_addr or "unknown")


def by_account():
    """The submitted e-mail, normalised and fingerprinted so storage never holds addresses."""
    return "account:" + audit.fingerprint(accounts.normalise_email(request.form.get("email")))


def by_user():
    return f"user:{current_user.id}"


KEY_KINDS = {by_ip: "ip", by_account: "account", by_user: "user"}


@dataclass(frozen=True)
class Family:
    setting: str
    default: str
    keys: tuple
    message: str
    methods: tuple = None  # None: every method of the route
    fallback: bool = True  # keep a per-process limit while the shared storage is down


FAMILIES = {
    "login": Family("RATELIMIT_LOGIN", "10/minute;50/hour", (by_ip, by_account),
                    "Too many sign-in attempts.", methods=("POST",)),
    "invite": Family("RATELIMIT_INVITE", "10/minute;50/hour", (by_ip,), "Too many invitation attempts."),
    "oauth": Family("RATELIMIT_OAUTH", "30/minute", (by_ip, by_user), "Too many connection attempts."),
    "token_actions": Family("RATELIMIT_TOKEN_ACTIONS", "20/minute;200/hour", (by_ip, by_user),
                            "Too many refresh or revoke requests."),
    "api": Family("RATELIMIT_API", "120/minute", (by_ip, by_user), "Too many API requests.", fallback=False),
    "tools": Family("RATELIMIT_TOOLS", "60/minute", (by_ip, by_user), "Too many tool calls.", fallback=False),
}

# Endpoint name patterns (fnmatch, first match wins) and the family each must carry.
SENSITIVE_ENDPOINTS = {
    "auth.login": "login",
    "auth.invite": "invite",
    "*invite*.accept*": "invite",
    "*.accept_invite*": "invite",
    "oauth.authorize": "oauth",
    "oauth.callback": "oauth",
    "oauth.revoke": "token_actions",
    "settings.refresh*": "token_actions",
    "settings.revoke*": "token_actions",
    "connections.refresh*": "token_actions",
    "connections.revoke*": "token_actions",
    "*.call_tool*": "tools",
    "api.*": "api",
}
# Methods a family may leave unlimited on a sensitive route (sign-in only counts POST).
UNCOUNTED_METHODS = {"login": {"GET", "HEAD", "OPTIONS"}}


def storage_down():
    """True while flask-limiter counts in its per-process fallback (no public API for this)."""
    return bool(getattr(limiter, "_storage_dead", False))


def _exempt_when(family, key):
    def exempt():
        if key is by_user and not current_user.is_authenticated:
            return True
        return not family.fallback and storage_down()

    return exempt


def _limit_string(setting):
    return lambda: current_app.config[setting]


def limits_for(name):
    """The stacked limiter decorators (one per key) for the family ``name``."""
    family = FAMILIES[name]
    decorators = [
        limiter.shared_limit(_limit_string(family.setting), scope=name, key_func=key,
                             methods=list(family.methods) if family.methods else None,
                             exempt_when=_exempt_when(family, key))
        for key in family.keys
    ]

    def decorate(view):
        for decorator in reversed(decorators):
            view = decorator(view)
        return view

    return decorate


limit_login = limits_for("login")
limit_invite = limits_for("invite")
limit_oauth = limits_for("oauth")
limit_token_actions = limits_for("token_actions")
limit_api = limits_for("api")
limit_tools = limits_for("tools")


def configure(app):
    """Fill and check the limit settings; a bad value stops start-up naming its variable."""
    for family in FAMILIES.values():
        app.config[family.setting] = app.config.get(family.setting) or family.default
        try:
            parse_many(app.config[family.setting])
        except ValueError as error:
            raise ConfigError(f"PORTAL_{family.setting}: {error}") from None
    app.config["RATELIMIT_STRATEGY"] = app.config.get("RATELIMIT_STRATEGY") or DEFAULT_STRATEGY
    if app.config["RATELIMIT_STRATEGY"] not in WINDOW_STRATEGIES:
        raise ConfigError(f"PORTAL_RATELIMIT_STRATEGY must be one of {', '.join(WINDOW_STRATEGIES)}")
    app.config.setdefault("RATELIMIT_ENABLED", True)
    app.config.setdefault("RATELIMIT_HEADERS_ENABLED", True)
    app.config.setdefault("RATELIMIT_SWALLOW_ERRORS", True)
    app.config.setdefault("RATELIMIT_IN_MEMORY_FALLBACK_ENABLED", True)
    # RATELIMIT_IN_MEMORY_FALLBACK stays unset: it would put its limit on every page during an
    # outage; unset, the fallback counts each route's own limits.
    if str(app.config.get("RATELIMIT_STORAGE_URI") or "").startswith(("redis", "rediss")):
        app.config.setdefault("RATELIMIT_STORAGE_OPTIONS", {"socket_connect_timeout": 1, "socket_timeout": 1})


def init_app(app):
    from portal import ratelimit_errors

    configure(app)
    app.extensions[EXTENSION] = {"down_since": None}
    # Registered before the limiter's own hook so that it runs after it (see ratelimit_errors).
    ratelimit_errors.init_app(app)
    limiter.init_app(app)
    # The limiter outlives an app in tests; a new app starts from a healthy storage.
    limiter._storage_dead = False
    app.after_request(_observe_after)
    app.context_processor(lambda: {"ratelimit_outage": _outage_for_admin})


def backend(app):
    return str(app.config.get("RATELIMIT_STORAGE_URI") or "memory://").split(":", 1)[0]


def _observe(app):
    """Log the start and the end of a storage outage once (per process)."""
    state = app.extensions[EXTENSION]
    down = app.config["RATELIMIT_ENABLED"] and storage_down()
    if down and state["down_since"] is None:
        state["down_since"] = utcnow()
        log.error("rate-limit storage %s is unreachable: sign-in, invitation, OAuth and token limits "
                  "now count per process, API and tool limits are off", backend(app))
    elif not down and state["down_since"] is not None:
        log.warning("rate-limit storage %s is reachable again (down since %s)", backend(app),
                    state["down_since"].isoformat(timespec="seconds"))
        state["down_since"] = None


def _observe_after(response):
    _observe(current_app)
    return response


def storage_status(app):
    """``{"backend", "healthy", "since", "message"}`` for admins: where limits are counted."""
    _observe(app)
    since = app.extensions[EXTENSION]["down_since"]
    name = backend(app)
    if not app.config["RATELIMIT_ENABLED"]:
        message = "Rate limiting is switched off."
    elif since:
        message = (f"The rate-limit store ({name}) has been unreachable since {since:%Y-%m-%d %H:%M} UTC: "
                   "sign-in and OAuth limits count per worker, API limits are off.")
    elif name == "memory":
        message = "Rate limits are counted in memory, separately by each worker process."
    else:
        message = f"Rate limits are counted in {name}, shared by every worker."
    return {"backend": name, "healthy": since is None, "since": since, "message": message}


def _outage_for_admin():
    if not has_request_context() or not current_user.is_authenticated or not current_user.is_admin:
        return None
    status = storage_status(current_app)
    return None if status["healthy"] else status


def limits_on(app, endpoint):
    """The limits a view carries (in an app context): ``[(family, limit, methods, key kind)]``."""
    view = app.view_functions[endpoint]
    manager = limiter.limit_manager
    found = manager.decorated_limits(get_qualified_name(view))
    blueprint = endpoint.rpartition(".")[0]
    if blueprint in app.blueprints:
        found += manager.blueprint_limits(app, blueprint)
    return [(lim.scope, str(lim.limit), lim.methods, KEY_KINDS.get(lim.key_func, "other")) for lim in found]


def uncovered_endpoints(app):
    """Sensitive endpoints (by ``SENSITIVE_ENDPOINTS``) missing their family's limit on a method."""
    missing = []
    for rule in app.url_map.iter_rules():
        family = next((f for pattern, f in SENSITIVE_ENDPOINTS.items() if fnmatchcase(rule.endpoint, pattern)), None)
        if family is None:
            continue
        limits = [entry for entry in limits_on(app, rule.endpoint) if entry[0] == family]
        for method in sorted(rule.methods - UNCOUNTED_METHODS.get(family, {"HEAD", "OPTIONS"})):
            if not any(methods is None or method.lower() in methods for _, _, methods, _ in limits):
                missing.append(f"{rule.endpoint} {method} needs ratelimit.limit_{family}")
    return missing
