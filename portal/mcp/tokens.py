"""Where the MCP client gets its bearer token: the token-provider interface.

The client is independent of the vault: it asks a ``TokenProvider`` for a token before the
first request and, when the server answers 401, asks it once for a fresh one. The default
provider, ``VaultTokens``, reads the user's connection through ``portal.oauth.vault``.
"""
import importlib
from typing import Protocol

from flask import current_app

from portal.errors import NotFound
from portal.mcp.errors import ConnectionRequired

VAULT_MODULE = "portal.oauth.vault"
NOT_CONNECTED = "This server needs a connection first: it is not connected to an account."
CONNECT_FIRST = "Connect it on Settings (click Connect), then try again."


class TokenProvider(Protocol):
    def get(self) -> str:
        """A valid access token for the server; raises ``ConnectionRequired`` if there is none."""

    def refresh(self, rejected: str) -> str | None:
        """A new access token after the server refused ``rejected`` (401), or None if there is
        none to be had. Called at most once per client call."""


class VaultTokens:
    """The tokens of one user's connection to one server, from the token vault."""

    def __init__(self, user_id, server_id, provider=None):
        self.user_id, self.server_id, self.provider = user_id, server_id, provider

    def get(self):
        try:
            token = self._vault().valid_access_token(self.user_id, self.server_id, self.provider)
        except NotFound:  # the vault's "not connected": the server exists, the connection does not
            raise ConnectionRequired(NOT_CONNECTED, CONNECT_FIRST, provider=self.provider) from None
        if not token:
            raise ConnectionRequired()
        return token

    def refresh(self, rejected):
        refresh = getattr(self._vault(), "refresh_after_rejection", None)
        return refresh(self.user_id, self.server_id, rejected, provider=self.provider) if refresh else None

    @staticmethod
    def _vault():
        # Imported on use: the OAuth core may import this package (discovery), and a portal
        # without the vault still answers "connect first".
        try:
            return importlib.import_module(VAULT_MODULE)
        except ModuleNotFoundError as error:
            if error.name not in (VAULT_MODULE, "portal.oauth"):
                raise
        raise ConnectionRequired(NOT_CONNECTED, CONNECT_FIRST)


def token_provider_for(user, server):
    """The token provider for ``user`` calling ``server``.

    ``MCP_TOKEN_PROVIDER`` in the app config (a callable ``(user_id, server_id, provider)``)
    replaces the vault, for embedding apps and tests; the default is ``VaultTokens``.
    """
    factory = current_app.config.get("MCP_TOKEN_PROVIDER") or VaultTokens
    return factory(user.id, server.id, server.provider)
