"""The answer to a request over its limit: 429, ``Retry-After``, a readable message, an audit event.

The body follows ``portal.errors``: a JSON error ``{"error": "rate_limited", "message": ...,
"retry_after": seconds}`` for /api/ and JSON requests, a fragment retargeted into ``#flash`` for
HTMX, a page otherwise. ``Retry-After`` always equals ``retry_after``.

Each hit is audited as ``ratelimit.exceeded``, at most once a minute per endpoint and key. The
throttle is a ``1/minute`` limit in the limiter's own storage, so with Redis it holds across all
workers (during a storage outage, per process). A failed audit write (busy database) is logged
and the 429 still goes out.
"""
import logging
import math
import time

from flask import current_app, g, jsonify, render_template, request
from flask_limiter import RateLimitExceeded
from limits import parse

from portal import audit, ratelimit
from portal.errors import wants_json
from portal.extensions import db, limiter

log = logging.getLogger("portal.ratelimit")
AUDIT_THROTTLE = parse("1/minute")


def init_app(app):
    # Must be registered before limiter.init_app: after_request hooks run in reverse order, so
    # this one runs after flask-limiter has written its own, slightly later, Retry-After.
    app.after_request(pin_retry_after)
    app.register_error_handler(RateLimitExceeded, handle_rate_limited)


def handle_rate_limited(error):
    seconds = retry_after(error)
    family = ratelimit.FAMILIES.get(error.limit.scope)
    message = f"{family.message if family else 'Too many requests.'} Try again in {in_words(seconds)}."
    audit_hit(error.limit)
    g.portal_retry_after = seconds
    headers = {"Retry-After": str(seconds)}
    if wants_json():
        return jsonify(error="rate_limited", message=message, retry_after=seconds), 429, headers
    if request.headers.get("HX-Request"):
        headers.update({"HX-Retarget": "#flash", "HX-Reswap": "innerHTML"})
        return render_template("fragments/rate_limited.html", message=message), 429, headers
    return render_template("rate_limited.html", message=message), 429, headers


def pin_retry_after(response):
    if response.status_code == 429 and "portal_retry_after" in g:
        response.headers["Retry-After"] = str(g.portal_retry_after)
    return response


def retry_after(error):
    """Whole seconds until the breached limit admits a request again (at least 1)."""
    try:
        reset_time = limiter.current_limit.window.reset_time
    except Exception:  # the storage failed since the check: the window length is a safe bound
        return error.limit.limit.get_expiry()
    return max(1, math.ceil(reset_time - time.time()))


def in_words(seconds):
    if seconds < 120:
        return "1 second" if seconds == 1 else f"{seconds} seconds"
    return f"{math.ceil(seconds / 60)} minutes"


def audit_hit(limit):
    """Record the hit unless this endpoint and key were recorded in the last minute."""
    kind = ratelimit.KEY_KINDS.get(limit.key_func, "other")
    try:
        key = limit.key_func()
        if not first_this_minute(request.endpoint, key):
            return
        details = {"limit": str(limit.limit), "family": limit.scope, "endpoint": request.endpoint,
                   "counted_by": kind}
        if kind == "account":
            details["account_fingerprint"] = key.partition(":")[2]
        audit.record(audit.Action.RATELIMIT_EXCEEDED, outcome="denied", details=details)
        db.session.commit()
    except Exception as error:
        db.session.rollback()
        log.warning("could not audit a rate-limit hit on %s (request %s): %s: %s", request.endpoint,
                    g.get("request_id"), type(error).__name__, str(getattr(error, "orig", error))[:200])


def first_this_minute(endpoint, key):
    prefix = current_app.config.get("RATELIMIT_KEY_PREFIX") or "portal"
    try:
        return limiter.limiter.hit(AUDIT_THROTTLE, prefix, "audit-throttle", endpoint or "-", key)
    except Exception:  # storage trouble: better one event too many than none
        return True
