"""The contract every provider plugin implements.

A plugin is a subclass of ``OAuthProvider`` published under the entry-point group
``portal.providers``; the registry instantiates it with no arguments. Class attributes declare
the provider; methods have working defaults for a standard OAuth 2.0 provider and are
overridden only for quirks. ``docs/plugins.md`` documents every member with an example.
"""
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from urllib.parse import urlsplit

CONTRACT_VERSION = 1
REQUIRED_ATTRIBUTES = ("name", "title", "authorize_url", "token_url")
SETTING_KEYS = ("client_id", "client_secret")
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class SettingSpec:
    """A value the provider needs from the operator, readable from ``env`` or the admin page."""

    key: str  # "client_id" or "client_secret"
    env: str  # e.g. "GOOGLE_CLIENT_ID"
    label: str
    secret: bool = False


class OAuthProvider(ABC):
    """An OAuth 2.0 provider as the portal sees it: declarations plus a few overridable hooks.

    Subclasses set the class attributes below and implement ``detect``; everything else has a
    default for a standard provider. Instances are created once per portal process with no
    arguments and shared between requests, so keep them free of per-request state.
    """

    #: The contract this plugin was written against; the host refuses any other.
    contract_version: int = CONTRACT_VERSION
    #: Stable id used in URLs, rows and the audit log: lower-case letters, digits and ``_``.
    name: str = ""
    #: What users read: "Gmail".
    title: str = ""
    #: Authorization endpoint (literal URL).
    authorize_url: str = ""
    #: Token endpoint (literal URL); the portal never takes it from a response.
    token_url: str = ""
    #: RFC 7009 revocation endpoint, or None if the provider has none.
    revoke_url: str | None = None
    #: Endpoint returning the account's identity for the account label, or None.
    userinfo_url: str | None = None
    #: The issuer expected in the callback's ``iss`` (RFC 9207), or None if not sent.
    issuer: str | None = None
    #: True if the provider always sends ``iss``; then a callback without it is refused.
    requires_iss: bool = False
    #: Scopes requested by default.
    scopes: tuple = ()
    #: Extra authorize parameters (Google: ``access_type=offline``, ``prompt=consent``).
    authorize_params: dict = {}
    #: How the client authenticates at the token endpoint: client_secret_basic or client_secret_post.
    token_endpoint_auth_method: str = "client_secret_basic"
    #: Settings read from the environment or the admin page (``SettingSpec``); empty means the
    #: defaults from ``setting_specs()``: ``<NAME>_CLIENT_ID`` and ``<NAME>_CLIENT_SECRET``.
    settings: tuple = ()
    #: Short text shown as the provider's icon (an emoji or two letters).
    icon: str = "🔑"

    @abstractmethod
    def detect(self, url: str) -> bool:
        """True if the MCP server at ``url`` needs this provider's tokens."""

    def scope_string(self) -> str:
        """The default scopes as one space-separated string, as OAuth sends them."""
        return " ".join(self.scopes)

    def build_authorize_params(self) -> dict:
        """Parameters this provider adds to every authorization request: ``scope`` plus
        ``authorize_params``. The portal adds client_id, redirect_uri, state and PKCE itself."""
        params = {"scope": self.scope_string()} if self.scopes else {}
        params.update(self.authorize_params)
        return params

    def setting_specs(self) -> tuple:
        """The settings this provider reads: ``settings``, or client id and secret from
        ``<NAME>_CLIENT_ID`` / ``<NAME>_CLIENT_SECRET``."""
        if self.settings:
            return tuple(self.settings)
        prefix = self.name.upper()
        return (SettingSpec("client_id", f"{prefix}_CLIENT_ID", "Client ID"),
                SettingSpec("client_secret", f"{prefix}_CLIENT_SECRET", "Client secret", secret=True))

    def parse_token_response(self, data: dict) -> dict:
        """Normalise a token response to access_token, refresh_token, expires_in, scope, token_type."""
        return {
            "access_token": data.get("access_token"),
            "refresh_token": data.get("refresh_token"),
            "expires_in": data.get("expires_in"),
            "scope": data.get("scope"),
            "token_type": data.get("token_type") or "Bearer",
        }

    def account_label(self, token: dict, userinfo: dict | None) -> str | None:
        """A human label for the connected account, e.g. the e-mail address."""
        if userinfo:
            return userinfo.get("email") or userinfo.get("login") or userinfo.get("name") or userinfo.get("sub")
        return None

    def revocation_request(self, token: str, token_type_hint: str) -> dict:
        """The form fields posted to ``revoke_url`` (RFC 7009 by default)."""
        return {"token": token, "token_type_hint": token_type_hint}


def host_matches(url: str, host: str) -> bool:
    """True if ``url`` is http(s) and its host is exactly ``host``: a helper for ``detect``."""
    try:
        parts = urlsplit(str(url))
        parts.hostname  # noqa: B018  (raises ValueError on a malformed host)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and (parts.hostname or "").lower() == host


def endpoint_is_safe(url: str) -> bool:
    """https, or plain http only to a loopback host (local test and demo servers)."""
    parts = urlsplit(str(url))
    return parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS)


def contract_problems(provider) -> list:
    """Why ``provider`` (an instance) breaks the contract; empty when it is fine."""
    problems = [f"missing setting: {attr}" for attr in REQUIRED_ATTRIBUTES if not getattr(provider, attr, None)]
    name = getattr(provider, "name", "") or ""
    if name and not NAME_PATTERN.match(str(name)):
        problems.append(f"invalid name {name!r}: use 1-64 lower-case letters, digits and _, starting with a letter")
    keys = {spec.key for spec in provider.setting_specs() if isinstance(spec, SettingSpec)}
    problems += [f"missing setting: settings must declare {key}" for key in SETTING_KEYS if key not in keys]
    for attr in ("authorize_url", "token_url", "revoke_url", "userinfo_url"):
        url = getattr(provider, attr, None)
        if url and not endpoint_is_safe(url):
            problems.append(f"insecure endpoint: {attr} must be https (http only on loopback)")
    if provider.token_endpoint_auth_method not in ("client_secret_basic", "client_secret_post"):
        problems.append(f"unsupported token_endpoint_auth_method {provider.token_endpoint_auth_method!r}")
    return problems
