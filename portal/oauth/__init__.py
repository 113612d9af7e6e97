"""The connection lifecycle: start, callback, token vault, refresh, revoke. No Flask views here.

- ``flows``: ``start`` (state + PKCE) and ``complete`` (the callback).
- ``vault``: ``valid_access_token(user_id, server_id, provider=None)``, the one way to get a
  token, and ``is_valid`` / ``status_of``, the one place that decides whether it is valid.
- ``refresh``: single-flight refresh under a row lock (``locking``); ``flights`` coalesces the
  threads of one process.
- ``revoke``: disable locally, revoke at the provider, retry until confirmed.
- ``jobs``: ``flask portal refresh-due``.
- ``http``: outbound OAuth calls through Authlib (timeouts, no redirects).

Services here run their writes in transactions of their own (``locking.own_transaction``) and
commit them; a caller's session is left alone.
"""
from portal import signals

DEFAULTS = {
    "OAUTH_REFRESH_SKEW": 60,  # seconds a token must still last to be handed out without a refresh
    "OAUTH_EXPIRING_WINDOW": 300,  # seconds before expiry the status shows "expiring"
    "OAUTH_LOCK_TIMEOUT": 10,  # seconds a refresh waits for another worker's row lock
    "OAUTH_HTTP_TIMEOUT": 8,  # seconds for any call to a provider
    "OAUTH_STATE_TTL": 600,  # seconds an authorization flow may take
    "OAUTH_RETRY_BASE": 30,  # first back-off after a failed refresh or revocation (doubles, max 1 h)
    "OAUTH_MAX_REVOCATION_ATTEMPTS": 8,
}


def init_app(app):
    from portal.oauth import revoke
    from portal.oauth.flights import Flights

    for key, value in DEFAULTS.items():
        app.config.setdefault(key, value)
    app.extensions["portal.oauth.flights"] = Flights()
    signals.user_disabled.connect(revoke.queue_user_revocations, sender=app)
    signals.server_deleting.connect(revoke.revoke_before_server_delete, sender=app)
