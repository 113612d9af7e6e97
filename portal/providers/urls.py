"""Building a provider's authorization URL the way the portal sends users to it (Authlib)."""
from authlib.integrations.httpx_client import OAuth2Client


def authorization_url(provider, client_id, redirect_uri, state, code_verifier, extra=None):
    """The URL to send the user to: the provider's endpoint with client_id, redirect_uri, state,
    PKCE S256 (from ``code_verifier``), ``provider.build_authorize_params()`` and ``extra``
    (e.g. ``{"resource": ...}`` for an MCP-spec server), ``extra`` winning on a clash."""
    params = {**provider.build_authorize_params(), **(extra or {})}
    scope = params.pop("scope", None)
    with OAuth2Client(client_id=client_id, redirect_uri=redirect_uri, scope=scope,
                      code_challenge_method="S256") as client:
        url, _ = client.create_authorization_url(provider.authorize_url, state=state,
                                                 code_verifier=code_verifier, **params)
    return url
