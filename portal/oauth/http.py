"""Outbound OAuth HTTP through Authlib's httpx client: bounded timeouts, no redirects.

Every call goes to an endpoint the provider plugin declares (never one taken from a response),
follows no redirects and gives up after ``OAUTH_HTTP_TIMEOUT`` seconds. Failures become
``InvalidGrant`` (the grant is dead: re-authenticate) or ``ProviderFailure`` (timeouts,
connection errors, 5xx, any other OAuth error); their ``reason`` never holds a secret, so it
may be shown, logged and audited.
"""
import math
import re
from contextlib import contextmanager

import httpx2
from authlib.integrations.base_client import OAuthError
from authlib.integrations.httpx_client import OAuth2Client
from flask import current_app

ERROR_CODE = re.compile(r"^[a-z0-9_.-]{1,64}$")
MAX_EXPIRES_IN = 10 * 365 * 24 * 3600
ACCEPT_JSON = {"Accept": "application/json"}


class ProviderFailure(Exception):
    """The provider could not be used right now; ``reason`` is safe to show."""

    def __init__(self, reason, status=None):
        super().__init__(reason)
        self.reason = reason
        self.status = status


class InvalidGrant(ProviderFailure):
    """The provider says the grant (code or refresh token) is invalid, expired or revoked."""


def safe_error_code(value):
    """An OAuth ``error`` value fit for a page or the audit log, else ``"unknown_error"``."""
    value = str(value or "")
    return value if ERROR_CODE.match(value) else "unknown_error"


def _tls():
    """The app's TLS context, built once: loading the CA store costs ~40 ms, more than a refresh."""
    context = current_app.extensions.get("portal.oauth.tls")
    if context is None:
        context = current_app.extensions["portal.oauth.tls"] = httpx2.create_ssl_context()
    return context


def _options():
    seconds = float(current_app.config["OAUTH_HTTP_TIMEOUT"])
    return {"timeout": httpx2.Timeout(seconds, connect=min(seconds, 5.0)), "follow_redirects": False,
            "verify": _tls()}


def _client(provider, credentials):
    return OAuth2Client(client_id=credentials.client_id, client_secret=credentials.client_secret,
                        token_endpoint_auth_method=provider.token_endpoint_auth_method, **_options())


@contextmanager
def _calling(what):
    seconds = current_app.config["OAUTH_HTTP_TIMEOUT"]
    try:
        yield
    except OAuthError as error:
        code = safe_error_code(error.error)
        if code == "invalid_grant":
            raise InvalidGrant(f"the provider refused the {what} (invalid_grant)") from None
        raise ProviderFailure(f"the provider answered the {what} with {code}") from None
    except httpx2.TimeoutException:
        raise ProviderFailure(f"the provider did not answer the {what} within {seconds} s") from None
    except httpx2.HTTPStatusError as error:
        status = error.response.status_code
        raise ProviderFailure(f"the provider answered the {what} with HTTP {status}", status) from None
    except httpx2.TransportError:
        raise ProviderFailure(f"the provider could not be reached for the {what}") from None
    except ValueError:
        raise ProviderFailure(f"the provider's answer to the {what} was not a token response") from None


def normalise(provider, data):
    """The provider's token response as access_token, refresh_token, expires_in, scope, token_type."""
    token = provider.parse_token_response(dict(data))
    if not isinstance(token.get("access_token"), str) or not token["access_token"]:
        raise ProviderFailure("the provider's token response had no access token")
    token["expires_in"] = _seconds(token.get("expires_in"))
    for name in ("refresh_token", "scope"):
        if not isinstance(token.get(name), str) or not token[name]:
            token[name] = None
    token["token_type"] = str(token.get("token_type") or "Bearer")[:32]
    return token


def _seconds(value):
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(seconds) else int(min(max(seconds, 0), MAX_EXPIRES_IN))


def exchange_code(provider, credentials, code, code_verifier, redirect_uri):
    """Trade an authorization code (with its PKCE verifier) at the configured token endpoint."""
    with _client(provider, credentials) as client, _calling("code exchange"):
        data = client.fetch_token(provider.token_url, grant_type="authorization_code", code=code,
                                  code_verifier=code_verifier, redirect_uri=redirect_uri)
    return normalise(provider, data)


def refresh(provider, credentials, refresh_token):
    """A new token pair for ``refresh_token``; ``refresh_token`` is None when none was returned."""
    with _client(provider, credentials) as client, _calling("token refresh"):
        response = client.post(provider.token_url,
                               data={"grant_type": "refresh_token", "refresh_token": refresh_token},
                               auth=client.client_auth(provider.token_endpoint_auth_method), headers=ACCEPT_JSON)
        data = client.parse_response_token(response)
    return normalise(provider, data)


def revoke(provider, credentials, token, token_type_hint):
    """RFC 7009 (or the plugin's own fields) at ``provider.revoke_url``; raises unless 200."""
    with _client(provider, credentials) as client, _calling("revocation"):
        response = client.post(provider.revoke_url,
                               data=provider.revocation_request(token, token_type_hint),
                               auth=client.client_auth(provider.token_endpoint_auth_method), headers=ACCEPT_JSON)
        if response.status_code != 200:
            raise ProviderFailure(f"the provider answered the revocation with HTTP {response.status_code}",
                                  response.status_code)


def userinfo(provider, access_token):
    """The provider's userinfo document for the account label, or None if it cannot be had."""
    if not provider.userinfo_url:
        return None
    try:
        with httpx2.Client(**_options()) as client:
            response = client.get(provider.userinfo_url, headers={"Authorization": f"Bearer {access_token}",
                                                                  "Accept": "application/json"})
        data = response.json() if response.status_code == 200 else None
    except (httpx2.HTTPError, ValueError):
        return None
    return data if isinstance(data, dict) else None
