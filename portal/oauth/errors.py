"""What can go wrong with a connection, in words fit for the user, with the next step.

The three texts the seed names are kept verbatim: ``STATE_INVALID``, ``EXCHANGE_FAILED`` and
``TOKENS_EXPIRED``.
"""
from portal.errors import NotFound, PortalError

STATE_INVALID = "OAuth state expired or invalid"
EXCHANGE_FAILED = "Failed to exchange authorization code"
TOKENS_EXPIRED = "OAuth tokens expired"

RESTART_FLOW = "Start the connection again from Settings (click Connect)."
CHECK_CONFIGURATION = ("Check the provider's OAuth configuration (client ID, secret and redirect URI) "
                       "with an admin, then connect again.")
REAUTHENTICATE = "Re-authenticate with the provider: click Reconnect on Settings."


class TokensExpired(PortalError):
    """No usable token: the grant is gone (reauth_required), revoked, or never stored."""

    status = 409
    code = "oauth_tokens_expired"

    def __init__(self, message=TOKENS_EXPIRED, next_step=REAUTHENTICATE, provider=None):
        super().__init__(message, next_step, provider)


class NotConnected(NotFound):
    def __init__(self, provider=None):
        super().__init__("This server is not connected to an account.",
                         "Connect it on Settings first.", provider)


class RefreshBusy(PortalError):
    """The connection stayed locked by another refresh for longer than the bounded wait."""

    status = 503
    code = "refresh_busy"

    def __init__(self, provider=None):
        super().__init__("Another worker is refreshing this connection and did not finish in time.",
                         "Try again in a moment.", provider)


class RefreshFailing(PortalError):
    """The provider did not answer a refresh (timeout, connection error, 5xx); tokens are kept."""

    status = 503
    code = "refresh_failing"

    def __init__(self, reason, provider=None):
        super().__init__(f"The token could not be refreshed: {reason}.",
                         "The portal keeps the tokens and retries on its own; try again in a few minutes.",
                         provider)


class FlowError(PortalError):
    """An authorization flow that cannot complete. ``reason`` is a short code for the audit log."""

    status = 400
    code = "oauth_flow_failed"

    def __init__(self, message, next_step, reason, provider=None):
        super().__init__(message, next_step, provider)
        self.reason = reason
