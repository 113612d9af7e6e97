"""A real, local OAuth 2.1 authorization server for tests, built on the MCP SDK.

The SDK (`mcp.server.auth.routes.create_auth_routes`) does the protocol work:
/authorize, /token (PKCE S256 check, redirect_uri check), /register (RFC 7591)
and /revoke (RFC 7009). This module supplies the in-memory provider
(`tests.peers.oauth_store`), the RFC 8414 metadata document, a consent page
(``auto_approve=False``), /userinfo, /introspect (RFC 7662, no client auth),
server-side call records and failure injection.

Token semantics: opaque tokens; refresh tokens rotate on every refresh;
presenting a rotated refresh token (also: two refreshes racing on one token)
answers ``invalid_grant`` and revokes the whole family (every access and
refresh token from that authorization). Revoking a refresh token revokes its
family; revoking an access token revokes only that token.

Client authentication at /token and /revoke: every secret-bearing client
accepts BOTH ``client_secret_basic`` and ``client_secret_post``. The SDK's
`ClientAuthenticator` alone accepts only the single method stored on the
client, and its form models require ``client_id`` (and, at /revoke,
``client_secret``) in the body even with HTTP Basic, which Authlib's
``client_secret_basic`` does not send. The front-door middleware bridges
both: with an ``Authorization: Basic`` header it adds the missing form fields
and has the SDK verify the Basic secret; otherwise the SDK verifies
``client_secret`` from the form.

Behaviour toggles are plain attributes, read per request, restored by `reset()`:
``auto_approve``, ``advertise_iss``, ``send_iss``, ``iss_override``,
``access_token_lifetime``, ``omit_refresh_token_on_refresh``, ``next_account``,
``slow_seconds``, ``delay_refresh``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import html
import threading
import time
from collections import deque
from typing import Any, Self
from urllib.parse import parse_qsl, unquote, urlencode

from pydantic import AnyHttpUrl, AnyUrl
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from mcp.server.auth.provider import AuthorizationParams, construct_redirect_uri
from mcp.server.auth.routes import build_metadata, create_auth_routes
from mcp.server.auth.settings import ClientRegistrationOptions, RevocationOptions
from mcp.shared.auth import OAuthClientInformationFull
from tests.peers.oauth_store import Provider, Store, request_auth_method
from tests.peers.runner import Lifecycle, ServerThread

DEFAULT_ACCOUNT = "user@example.test"
INJECTION_ENDPOINTS = frozenset({"token", "refresh", "revoke"})
INJECTION_KINDS = frozenset({"503", "invalid_grant", "slow"})
_RECORDED_PATHS = {"/token": "token", "/revoke": "revoke", "/authorize": "authorize", "/userinfo": "userinfo"}
_CONSENT_HTML = """<!doctype html>
<html><head><meta charset="utf-8"><title>Authorize {client}</title></head>
<body><h1>Authorize {client}</h1>
<p><b>{client}</b> wants access to <b>{account}</b> with scopes: {scopes}</p>
<form method="post" action="/consent">
<input type="hidden" name="request" value="{request_id}">
<button type="submit" name="decision" value="allow">Allow</button>
<button type="submit" name="decision" value="deny">Deny</button>
</form></body></html>"""


class OAuthPeer(Lifecycle):
    """In-process authorization server. `start()` before use; `stop()` after.

    Attributes after `start()`: ``base_url`` and ``issuer`` (identical strings,
    no trailing slash, exactly the metadata ``issuer``), ``metadata_url``,
    ``authorization_endpoint``, ``token_endpoint``, ``revocation_endpoint``,
    ``registration_endpoint``, ``userinfo_endpoint``, ``introspection_endpoint``.
    """

    def __init__(
        self,
        *,
        auto_approve: bool = True,
        advertise_iss: bool = True,
        send_iss: bool = True,
        iss_override: str | None = None,
        access_token_lifetime: int = 3600,
        omit_refresh_token_on_refresh: bool = False,
        scopes_supported: list[str] | None = None,
    ) -> None:
        self._defaults: dict[str, Any] = {
            "auto_approve": auto_approve,
            "advertise_iss": advertise_iss,
            "send_iss": send_iss,
            "iss_override": iss_override,
            "access_token_lifetime": access_token_lifetime,
            "omit_refresh_token_on_refresh": omit_refresh_token_on_refresh,
            "next_account": DEFAULT_ACCOUNT,
            "slow_seconds": 3.0,
            "delay_refresh": 0.0,
        }
        self.auto_approve = auto_approve
        self.advertise_iss = advertise_iss
        self.send_iss = send_iss
        self.iss_override = iss_override
        self.access_token_lifetime = access_token_lifetime
        self.omit_refresh_token_on_refresh = omit_refresh_token_on_refresh
        self.next_account = DEFAULT_ACCOUNT
        self.slow_seconds = 3.0
        self.delay_refresh = 0.0
        self.scopes_supported = scopes_supported
        self._lock = threading.Lock()
        self._store = Store()
        self._calls: list[dict[str, Any]] = []
        self._injections: dict[str, deque[str]] = {e: deque() for e in INJECTION_ENDPOINTS}
        self._server: ServerThread | None = None
        self.base_url = ""

    # -- lifecycle -----------------------------------------------------------
    def start(self, port: int = 0) -> Self:
        self._server = ServerThread(self._build_app, port=port, name="oauth-peer")
        self._server.start()
        return self

    def reset(self) -> None:
        """Forget clients, codes, tokens, call records and injections; restore toggles."""
        self._store.clear()
        with self._lock:
            self._calls.clear()
            for queue in self._injections.values():
                queue.clear()
        for name, value in self._defaults.items():
            setattr(self, name, value)

    @property
    def issuer(self) -> str:
        return self.base_url

    def url(self, path: str) -> str:
        return self.base_url + path

    metadata_url = property(lambda self: self.url("/.well-known/oauth-authorization-server"))
    authorization_endpoint = property(lambda self: self.url("/authorize"))
    token_endpoint = property(lambda self: self.url("/token"))
    revocation_endpoint = property(lambda self: self.url("/revoke"))
    registration_endpoint = property(lambda self: self.url("/register"))
    userinfo_endpoint = property(lambda self: self.url("/userinfo"))
    introspection_endpoint = property(lambda self: self.url("/introspect"))

    # -- test API ------------------------------------------------------------
    def register_client(
        self,
        client_id: str,
        client_secret: str | None,
        redirect_uris: list[str],
        scopes: list[str] | None = None,
    ) -> OAuthClientInformationFull:
        """Pre-register a client. With a secret it is confidential (basic or post);
        with ``client_secret=None`` it is public (``token_endpoint_auth_method=none``).
        ``scopes=None`` lets the client request any scope."""
        info = OAuthClientInformationFull(
            client_id=client_id,
            client_secret=client_secret,
            redirect_uris=[AnyUrl(u) for u in redirect_uris],
            scope=" ".join(scopes) if scopes else None,
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
            token_endpoint_auth_method="client_secret_basic" if client_secret else "none",
            client_id_issued_at=int(time.time()),
        )
        self._store.add_client(info)
        return info

    def introspect(self, token: str) -> dict[str, Any] | None:
        """RFC 7662-shaped claims for a live access token, else None (refresh tokens: None)."""
        claims = self._store.introspect(token)
        if claims is not None:
            claims["iss"] = self.issuer
        return claims

    def is_refresh_token_active(self, token: str) -> bool:
        return self._store.refresh_active(token)

    def expire_all_access_tokens(self) -> None:
        self._store.expire_all_access()

    def revoke_grant_for(self, account: str) -> None:
        """Simulate the user removing the app at the provider: all of the account's
        grants die, so access tokens stop validating and refreshes get invalid_grant."""
        self._store.revoke_account(account)

    def fail_next(self, endpoint: str, kind: str, times: int = 1) -> None:
        """Make the next ``times`` requests to ``endpoint`` fail with ``kind``.

        endpoint: "token" (any grant), "refresh" (grant_type=refresh_token only), "revoke".
        kind: "503" (503 temporarily_unavailable), "invalid_grant" (400, state untouched),
        "slow" (sleep ``slow_seconds`` then answer normally).
        """
        if endpoint not in INJECTION_ENDPOINTS or kind not in INJECTION_KINDS:
            raise ValueError(f"unsupported injection {endpoint!r}/{kind!r}")
        with self._lock:
            self._injections[endpoint].extend([kind] * times)

    @property
    def calls(self) -> list[dict[str, Any]]:
        """Snapshot of every request that reached /token, /revoke, /authorize or /userinfo:
        ``{"endpoint", "grant_type", "client_id", "time", "status", "injected"}``."""
        with self._lock:
            return [dict(c) for c in self._calls]

    def calls_to(self, endpoint: str, grant_type: str | None = None) -> list[dict[str, Any]]:
        return [
            c for c in self.calls if c["endpoint"] == endpoint and (grant_type is None or c["grant_type"] == grant_type)
        ]

    token_calls = property(lambda self: len(self.calls_to("token")))
    refresh_calls = property(lambda self: len(self.calls_to("token", "refresh_token")))
    code_exchanges = property(lambda self: len(self.calls_to("token", "authorization_code")))
    revoke_calls = property(lambda self: len(self.calls_to("revoke")))
    authorize_calls = property(lambda self: len(self.calls_to("authorize")))

    # -- provider hooks (called by oauth_store.Provider) -----------------------
    def _iss_params(self) -> dict[str, str | None]:
        if not self.send_iss:
            return {}
        return {"iss": self.iss_override if self.iss_override is not None else self.issuer}

    def _authorization_redirect(self, client: OAuthClientInformationFull, params: AuthorizationParams) -> str:
        if not self.auto_approve:
            request_id = self._store.park(client.client_id, params)
            return self.url(f"/consent?request={request_id}")
        return self._approve(client.client_id, params)

    def _approve(self, client_id: str, params: AuthorizationParams) -> str:
        code = self._store.new_code(client_id, params, self.next_account)
        return construct_redirect_uri(str(params.redirect_uri), code=code, state=params.state, **self._iss_params())

    # -- HTTP ------------------------------------------------------------------
    async def _metadata(self, request: Request) -> Response:
        metadata = build_metadata(
            AnyHttpUrl(self.issuer),
            None,
            ClientRegistrationOptions(enabled=True, valid_scopes=self.scopes_supported),
            RevocationOptions(enabled=True),
        ).model_dump(mode="json", exclude_none=True)
        # The SDK would emit the pydantic-normalised issuer ("http://host:port/"); RFC 8414
        # requires the exact string the client compares against.
        metadata["issuer"] = self.issuer
        metadata["userinfo_endpoint"] = self.userinfo_endpoint
        metadata["introspection_endpoint"] = self.introspection_endpoint
        if self.advertise_iss:
            metadata["authorization_response_iss_parameter_supported"] = True
        return JSONResponse(metadata)

    async def _consent_page(self, request: Request) -> Response:
        request_id = request.query_params.get("request", "")
        pending = self._store.pending(request_id)
        if pending is None:
            return HTMLResponse("<p>Unknown or expired authorization request.</p>", status_code=400)
        client_id, params = pending
        body = _CONSENT_HTML.format(
            client=html.escape(client_id),
            account=html.escape(self.next_account),
            scopes=html.escape(" ".join(params.scopes or [])),
            request_id=html.escape(request_id),
        )
        return HTMLResponse(body, headers={"Cache-Control": "no-store"})

    async def _consent_decision(self, request: Request) -> Response:
        form = await request.form()
        pending = self._store.unpark(str(form.get("request", "")))
        if pending is None:
            return HTMLResponse("<p>Unknown or expired authorization request.</p>", status_code=400)
        client_id, params = pending
        if form.get("decision") == "allow":
            location = self._approve(client_id, params)
        else:
            location = construct_redirect_uri(
                str(params.redirect_uri), error="access_denied", state=params.state, **self._iss_params()
            )
        return RedirectResponse(location, status_code=302, headers={"Cache-Control": "no-store"})

    async def _userinfo(self, request: Request) -> Response:
        claims = self.introspect(_bearer(request))
        if claims is None:
            challenge = {"WWW-Authenticate": 'Bearer error="invalid_token"'}
            return JSONResponse({"error": "invalid_token"}, status_code=401, headers=challenge)
        return JSONResponse({"sub": claims["sub"], "email": claims["email"]})

    async def _introspect_endpoint(self, request: Request) -> Response:
        form = await request.form()
        claims = self.introspect(str(form.get("token", "")))
        return JSONResponse(claims if claims is not None else {"active": False})

    def _build_app(self, base_url: str) -> Any:
        self.base_url = base_url
        sdk_routes = create_auth_routes(
            Provider(self._store, self),
            AnyHttpUrl(base_url),
            client_registration_options=ClientRegistrationOptions(enabled=True, valid_scopes=self.scopes_supported),
            revocation_options=RevocationOptions(enabled=True),
        )
        routes = [r for r in sdk_routes if getattr(r, "path", "") != "/.well-known/oauth-authorization-server"]
        routes += [
            Route("/.well-known/oauth-authorization-server", self._metadata, methods=["GET"]),
            Route("/consent", self._consent_page, methods=["GET"]),
            Route("/consent", self._consent_decision, methods=["POST"]),
            Route("/userinfo", self._userinfo, methods=["GET"]),
            Route("/introspect", self._introspect_endpoint, methods=["POST"]),
        ]
        return _FrontDoor(Starlette(routes=routes), self)

    # -- front-door bookkeeping --------------------------------------------------
    def _record(
        self, endpoint: str, grant_type: str | None, client_id: str | None, injected: str | None
    ) -> dict[str, Any]:
        record = {
            "endpoint": endpoint,
            "grant_type": grant_type,
            "client_id": client_id,
            "time": time.time(),
            "status": None,
            "injected": injected,
        }
        with self._lock:
            self._calls.append(record)
        return record

    def _take_injection(self, endpoint: str, grant_type: str | None) -> str | None:
        keys = {"token": ["refresh", "token"] if grant_type == "refresh_token" else ["token"], "revoke": ["revoke"]}
        with self._lock:
            for key in keys.get(endpoint, []):
                if self._injections[key]:
                    return self._injections[key].popleft()
        return None

    def _set_status(self, record: dict[str, Any], status: int) -> None:
        with self._lock:
            record["status"] = status


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    return header[7:].strip() if header.lower().startswith("bearer ") else ""


class _FrontDoor:
    """ASGI wrapper in front of the SDK handlers: records calls, injects failures,
    and adapts HTTP Basic client auth (see module docstring)."""

    def __init__(self, app: Any, peer: OAuthPeer) -> None:
        self.app = app
        self.peer = peer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        endpoint = _RECORDED_PATHS.get(scope.get("path", "")) if scope["type"] == "http" else None
        if endpoint is None or scope["method"] == "OPTIONS":
            await self.app(scope, receive, send)
            return
        body = await read_body(receive)
        form = _form_fields(scope, body) if scope["method"] == "POST" else _query_fields(scope)
        basic = parse_basic(scope)
        if basic and endpoint in ("token", "revoke"):
            # RFC 6749 2.3.1 lets Basic clients omit these; the SDK's form models require them.
            extra = {"client_id": basic[0]} if "client_id" not in form else {}
            if endpoint == "revoke" and "client_secret" not in form:
                extra["client_secret"] = ""  # ignored: the SDK verifies the Basic secret
            if extra:
                body = body + (b"&" if body else b"") + urlencode(extra).encode()
                scope = _with_content_length(scope, len(body))
        grant_type = form.get("grant_type") if endpoint == "token" else None
        injected = self.peer._take_injection(endpoint, grant_type)
        client_id = form.get("client_id") or (basic[0] if basic else None)
        record = self.peer._record(endpoint, grant_type, client_id, injected)

        async def send_recording(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                # before the bytes leave: a caller that got the response sees its status
                self.peer._set_status(record, message["status"])
            await send(message)

        if grant_type == "refresh_token" and self.peer.delay_refresh:
            await asyncio.sleep(self.peer.delay_refresh)
        if injected == "slow":
            await asyncio.sleep(self.peer.slow_seconds)
        if injected == "503":
            response: Any = JSONResponse(
                {"error": "temporarily_unavailable", "error_description": "injected 503"}, status_code=503
            )
        elif injected == "invalid_grant":
            response = JSONResponse({"error": "invalid_grant", "error_description": "injected"}, status_code=400)
        else:
            response = self.app
        method = "client_secret_basic" if basic else "client_secret_post"
        method_token = request_auth_method.set(method if endpoint in ("token", "revoke") else None)
        try:
            await response(scope, replay_body(body, receive), send_recording)
        finally:
            request_auth_method.reset(method_token)


def _form_fields(scope: Scope, body: bytes) -> dict[str, str]:
    headers = dict(scope.get("headers", []))
    if not headers.get(b"content-type", b"").startswith(b"application/x-www-form-urlencoded"):
        return {}
    return dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))


def _query_fields(scope: Scope) -> dict[str, str]:
    return dict(parse_qsl(scope.get("query_string", b"").decode("utf-8", "replace"), keep_blank_values=True))


def _with_content_length(scope: Scope, length: int) -> Scope:
    headers = [(k, v) for k, v in scope["headers"] if k != b"content-length"]
    headers.append((b"content-length", str(length).encode()))
    return {**scope, "headers": headers}


async def read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    return b"".join(chunks)


def replay_body(body: bytes, receive: Receive) -> Receive:
    """A `receive` that yields the already-read body once, then defers to the original."""
    sent = False

    async def _receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return _receive


def parse_basic(scope: Scope) -> tuple[str, str] | None:
    """(client_id, secret) from an ``Authorization: Basic`` header (RFC 6749 2.3.1), else None."""
    header = dict(scope.get("headers", [])).get(b"authorization", b"").decode("latin-1")
    if not header.lower().startswith("basic "):
        return None
    try:
        client_id, _, secret = base64.b64decode(header[6:].strip()).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return unquote(client_id), unquote(secret)
