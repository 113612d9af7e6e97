"""Authorization flows: ``start`` (state + PKCE) and ``complete`` (the callback); SECURITY.md 1-6.

start: a random state (256 bits) stored only as its SHA-256, bound to the user, the browser
session (the hash of a per-session nonce the view keeps in the Flask session) and the provider,
valid ``OAUTH_STATE_TTL`` seconds, single use; a PKCE S256 verifier sealed in the state row
(never in a URL, log or page); the provider's issuer remembered for the RFC 9207 check; the
redirect URI is the configured ``OAUTH_REDIRECT_URI``, never built from the request.

complete: the state, then ``iss``, are checked before anything else (a bad one costs zero
token-endpoint calls); the state is consumed (single use); a provider ``error=`` is reported in
plain words; the code is exchanged at the plugin's configured token endpoint; the sealed tokens
are upserted together with the ``oauth.authorize.succeeded`` event. Failures are audited as
``oauth.authorize.failed`` with a short reason, never a code, state or verifier.
"""
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta

from flask import current_app
from sqlalchemy import select

from portal import audit
from portal.audit import Action, fingerprint
from portal.crypto import SealError, open_field, seal_field
from portal.errors import BadInput
from portal.models import Connection, MCPServer, OAuthState, utcnow
from portal.oauth import http, vault
from portal.oauth.errors import (CHECK_CONFIGURATION, EXCHANGE_FAILED, RESTART_FLOW, STATE_INVALID, FlowError)
from portal.oauth.locking import lock_connection, own_transaction
from portal.providers import settings
from portal.providers.registry import registry
from portal.providers.urls import authorization_url

MAX_PARAM = {"state": 512, "code": 4096, "iss": 2048, "error": 128}
PROVIDER_ERRORS = {
    "access_denied": "You declined access at {title}.",
    "consent_required": "{title} needs your consent to connect.",
    "login_required": "You need to sign in at {title} to connect.",
    "interaction_required": "{title} needs you to finish signing in.",
    "invalid_scope": "{title} refused the requested permissions.",
    "temporarily_unavailable": "{title} is temporarily unavailable.",
    "server_error": "{title} had a problem on its side.",
}


@dataclass(frozen=True)
class Completed:
    server_id: int
    server_name: str
    provider: str
    provider_title: str
    return_to: str | None


def digest(value):
    return hashlib.sha256(str(value).encode()).hexdigest()


def choose_provider(team_id, server, name=None):
    """The provider for a flow: ``name``, else the server's, else the first enabled one whose
    ``detect()`` claims the server's URL. It must be usable (enabled and configured) in the team."""
    usable = settings.usable_providers(team_id)
    if name is None:
        name = server.provider
    if name is None:
        found = registry().detect(server.url, names=set(usable))
        if not found:
            raise BadInput("No enabled provider matches this server's URL.",
                           "Choose the provider by hand, or ask an admin to enable the right plugin.")
        name = found[0].name
    if name not in usable:
        provider = registry().get(name) if isinstance(name, str) else None
        raise settings.ProviderNotConfigured(provider or name)
    return usable[name]


def start(user, server, provider_name, session_nonce, return_to=None):
    """Begin a flow for ``server``; returns the seed's ``{oauth_url, state, provider, server_name}``."""
    state, verifier = secrets.token_urlsafe(32), secrets.token_urlsafe(64)
    redirect_uri = current_app.config["OAUTH_REDIRECT_URI"]
    now = utcnow()
    with own_transaction() as session:
        provider = choose_provider(user.team_id, server, provider_name)
        credentials = settings.credentials(user.team_id, provider.name)
        row = OAuthState(state_hash=digest(state), user_id=user.id, server_id=server.id, provider=provider.name,
                         session_hash=digest(session_nonce), issuer=provider.issuer, redirect_uri=redirect_uri,
                         return_to=return_to, created_at=now,
                         expires_at=now + timedelta(seconds=current_app.config["OAUTH_STATE_TTL"]))
        seal_field(row, "code_verifier", verifier)
        session.add(row)
        url = authorization_url(provider, credentials.client_id, redirect_uri, state, verifier)
        audit.record(Action.OAUTH_AUTHORIZE_STARTED, actor=user, team_id=user.team_id, target_type="mcp_servers",
                     target_id=server.id, target_label=server.name, provider=provider.name,
                     details={"server_id": server.id, "state_fingerprint": fingerprint(state)})
        session.commit()
    return {"oauth_url": url, "state": state, "provider": provider.name, "server_name": server.name}


def complete(user, session_nonce, params):
    """Finish the flow the callback ``params`` belong to; returns Completed or raises FlowError."""
    params = {name: _param(params, name) for name in MAX_PARAM}
    flow = _consume_state(user, session_nonce, params["state"])
    provider = registry().get(flow.provider)
    try:
        _check_issuer(flow, provider, params["iss"])
        if params["error"] is not None:
            raise _provider_error(provider, params["error"])
        token, label = _exchange(user, flow, provider, params["code"])
    except FlowError as error:
        _audit_failure(user, error, flow.server_id, flow.provider, params["state"])
        raise
    return _save(user, flow, provider, token, label)


def reject_signed_out(params):
    """A callback without a signed-in user: nothing is checked or exchanged, the attempt is audited."""
    state = _param(params, "state")
    details = {"reason": "signed_out"}
    if state is not None:
        details["state_fingerprint"] = fingerprint(state)
    with own_transaction() as session:
        audit.record(Action.OAUTH_AUTHORIZE_FAILED, outcome="failure", details=details)
        session.commit()
    return _state_error("signed_out")


def _param(params, name):
    value = params.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > MAX_PARAM[name]:
        return "\x00invalid"  # never matches a state, an issuer or a code
    return value


def _state_error(reason):
    return FlowError(STATE_INVALID, RESTART_FLOW, reason)


def _consume_state(user, session_nonce, state):
    """The flow's state row, consumed (single use), if it is this user's and this session's."""
    if state is None:
        _fail(user, _state_error("state_missing"), state=None)
    with own_transaction() as session:
        row = session.scalar(select(OAuthState).where(OAuthState.state_hash == digest(state)))
        reason = _state_problem(row, user, session_nonce)
        if reason is None:
            row.consumed_at = utcnow()
            verifier = _open_verifier(row)
            flow = _Flow(row.id, row.server_id, row.provider, row.issuer, row.redirect_uri, row.return_to, verifier)
            session.commit()
    if reason is not None:
        _fail(user, _state_error(reason), state=state, row=row)
    if flow.verifier is None:
        _fail(user, _state_error("verifier_unreadable"), state=state, row=row)
    return flow


@dataclass(frozen=True)
class _Flow:
    id: int
    server_id: int
    provider: str
    issuer: str | None
    redirect_uri: str
    return_to: str | None
    verifier: str | None


def _state_problem(row, user, session_nonce):
    if row is None:
        return "state_unknown"
    if row.user_id != user.id:
        return "state_other_user"
    if not hmac.compare_digest(row.session_hash, digest(session_nonce or "")):
        return "state_other_session"
    if row.consumed_at is not None:
        return "state_used"
    if row.expires_at <= utcnow():
        return "state_expired"
    return None


def _open_verifier(row):
    try:
        return open_field(row, "code_verifier")
    except SealError:
        return None


def _check_issuer(flow, provider, iss):
    """RFC 9207: ``iss`` must equal the flow's issuer exactly; missing only if not required."""
    if iss is None:
        if provider is None or provider.requires_iss:
            raise FlowError(STATE_INVALID, RESTART_FLOW, "iss_missing", flow.provider)
        return
    if flow.issuer is None or not hmac.compare_digest(iss.encode(), flow.issuer.encode()):
        raise FlowError(STATE_INVALID, RESTART_FLOW, "iss_mismatch", flow.provider)


def _provider_error(provider, error):
    code = http.safe_error_code(error)
    title = provider.title if provider else "The provider"
    message = PROVIDER_ERRORS.get(code, "{title} did not grant access (" + code + ").").format(title=title)
    next_step = "Click Connect to try again." if code != "invalid_scope" else CHECK_CONFIGURATION
    return FlowError(message, next_step, f"provider_error:{code}", getattr(provider, "name", None))


def _exchange(user, flow, provider, code):
    if code is None or code.startswith("\x00"):
        raise FlowError(EXCHANGE_FAILED, CHECK_CONFIGURATION, "code_missing", flow.provider)
    if provider is None:
        raise FlowError(EXCHANGE_FAILED, CHECK_CONFIGURATION, "provider_not_installed", flow.provider)
    try:
        with own_transaction(write=False):
            credentials = settings.credentials(user.team_id, provider.name)
        token = http.exchange_code(provider, credentials, code, flow.verifier, flow.redirect_uri)
    except settings.ProviderNotConfigured:
        raise FlowError(EXCHANGE_FAILED, CHECK_CONFIGURATION, "provider_not_configured", provider.name) from None
    except http.ProviderFailure as error:
        raise FlowError(EXCHANGE_FAILED, CHECK_CONFIGURATION, f"exchange_failed: {error.reason}",
                        provider.name) from None
    return token, provider.account_label(token, http.userinfo(provider, token["access_token"]))


def _save(user, flow, provider, token, label):
    """Upsert the connection under its row lock, with the success event, in one transaction."""
    with own_transaction() as session:
        server = session.get(MCPServer, flow.server_id)
        existing = session.scalar(select(Connection.id).where(
            Connection.user_id == user.id, Connection.server_id == flow.server_id,
            Connection.provider == provider.name))
        connection = lock_connection(session, existing) if existing else None
        if connection is None:
            connection = Connection(user_id=user.id, server_id=flow.server_id, provider=provider.name, version=0,
                                    failure_count=0, token_type="Bearer")
            session.add(connection)
        elif connection.status == "revocation_pending":
            vault.record(Action.TOKEN_REVOCATION_FAILED, connection, actor=user, outcome="failure",
                         details={"reason": "replaced by a new connection before the provider confirmed"})
        vault.store_tokens(connection, token, utcnow())
        connection.scope = token["scope"] or provider.scope_string() or None
        connection.account_label = (str(label)[:254] if label else None)
        connection.issuer = flow.issuer
        session.flush()
        vault.record(Action.OAUTH_AUTHORIZE_SUCCEEDED, connection, actor=user,
                     details={"scope": connection.scope, "version": connection.version})
        session.commit()
        return Completed(server.id, server.name, provider.name, provider.title, flow.return_to)


def _fail(user, error, state, row=None):
    _audit_failure(user, error, row.server_id if row else None, row.provider if row else None, state)
    raise error


def _audit_failure(user, error, server_id, provider, state):
    details = {"reason": error.reason, "server_id": server_id}
    if state is not None:
        details["state_fingerprint"] = fingerprint(state)
    with own_transaction() as session:
        audit.record(Action.OAUTH_AUTHORIZE_FAILED, actor=user, team_id=user.team_id, target_type="mcp_servers",
                     target_id=server_id, provider=provider, outcome="failure", details=details)
        session.commit()
