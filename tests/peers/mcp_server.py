"""A real MCP resource server (streamable HTTP, MCP SDK) protected by the OAuth peer,
plus two small helper peers for redirect/credential-leak tests.

`MCPPeer(oauth_peer)` serves ``<base>/mcp`` and requires ``Authorization: Bearer``
with a token the OAuth peer vouches for (`OAuthPeer.introspect`). Without one it
answers 401 with ``WWW-Authenticate: Bearer ..., resource_metadata="<PRM url>"``.
RFC 9728 metadata is served at ``/.well-known/oauth-protected-resource/mcp`` and,
with the same document, at ``/.well-known/oauth-protected-resource``.

Tools: ``echo(text) -> text``, ``whoami() -> subject`` (the token's account, e.g.
``alice@example.test``), ``list_messages() -> fixed list`` (pretend Gmail).

`RecordingPeer` records every request (method, path, headers) and answers with a
fixed status/body. `RedirectingPeer(target)` answers any request under ``/mcp``
with ``307 Location: <target>`` and records what it saw too.
"""

from __future__ import annotations

import threading
from typing import Any, Self

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.provider import AccessToken
from mcp.server.auth.routes import create_protected_resource_routes
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import MCPServer
from tests.peers.oauth_server import OAuthPeer
from tests.peers.runner import Lifecycle, ServerThread

MESSAGES: list[dict[str, str]] = [
    {"id": "m1", "from": "bob@example.test", "subject": "Lunch?", "snippet": "Tacos at noon"},
    {"id": "m2", "from": "carol@example.test", "subject": "Quarterly report", "snippet": "Draft attached"},
    {"id": "m3", "from": "noreply@example.test", "subject": "Welcome", "snippet": "Thanks for signing up"},
]


class PeerTokenVerifier:
    """SDK `TokenVerifier` that asks the OAuth peer (in-process introspection)."""

    def __init__(self, oauth: OAuthPeer) -> None:
        self.oauth = oauth

    async def verify_token(self, token: str) -> AccessToken | None:
        claims = self.oauth.introspect(token)
        if claims is None:
            return None
        return AccessToken(
            token=token,
            client_id=claims["client_id"],
            scopes=claims["scope"].split(),
            expires_at=claims["exp"],
            resource=claims.get("aud"),
            subject=claims["sub"],
            claims={"iss": claims["iss"], "email": claims["email"]},
        )


class _HeaderRecorder:
    """ASGI wrapper appending each HTTP request's (method, path, headers) to a list."""

    def __init__(self, app: ASGIApp, sink: list[dict[str, Any]], lock: threading.Lock) -> None:
        self.app = app
        self.sink = sink
        self.lock = lock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
            with self.lock:
                self.sink.append({"method": scope["method"], "path": scope["path"], "headers": headers})
        await self.app(scope, receive, send)


class _PeerBase(Lifecycle):
    """Start/stop plumbing and thread-safe request records shared by the peers."""

    name = "peer"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: list[dict[str, Any]] = []
        self._server: ServerThread | None = None
        self.base_url = ""

    def _build_app(self, base_url: str) -> ASGIApp:
        raise NotImplementedError

    def start(self, port: int = 0) -> Self:
        def factory(base_url: str) -> ASGIApp:
            self.base_url = base_url
            return _HeaderRecorder(self._build_app(base_url), self._requests, self._lock)

        self._server = ServerThread(factory, port=port, name=self.name)
        self._server.start()
        return self

    @property
    def requests(self) -> list[dict[str, Any]]:
        """Snapshot: ``[{"method", "path", "headers": {lower-case name: value}}]``."""
        with self._lock:
            return [dict(r) for r in self._requests]

    @property
    def seen_authorization(self) -> list[str]:
        """Authorization header values received, in arrival order (requests without one skipped)."""
        return [r["headers"]["authorization"] for r in self.requests if "authorization" in r["headers"]]

    def reset(self) -> None:
        with self._lock:
            self._requests.clear()

    @property
    def url(self) -> str:
        return self.base_url + "/mcp"


class MCPPeer(_PeerBase):
    """The MCP server. ``required_scopes`` are enforced (403 insufficient_scope);
    ``validate_resource=True`` also refuses tokens not issued (RFC 8707) for `url`."""

    name = "mcp-peer"

    def __init__(
        self, oauth: OAuthPeer, *, required_scopes: list[str] | None = None, validate_resource: bool = False
    ) -> None:
        super().__init__()
        self.oauth = oauth
        # read when the app is built (start()), so changing them later has no effect
        self.required_scopes = required_scopes
        self.validate_resource = validate_resource

    @property
    def resource_metadata_url(self) -> str:
        return self.base_url + "/.well-known/oauth-protected-resource/mcp"

    def _build_app(self, base_url: str) -> ASGIApp:
        server: MCPServer = MCPServer(
            name="peer-mcp",
            token_verifier=PeerTokenVerifier(self.oauth),
            auth=AuthSettings(
                issuer_url=self.oauth.issuer,  # a str keeps the exact issuer (no trailing "/")
                resource_server_url=base_url + "/mcp",
                required_scopes=self.required_scopes,
                validate_token_resource=self.validate_resource,
            ),
            log_level="WARNING",
        )

        @server.tool()
        def echo(text: str) -> str:
            """Return the text unchanged."""
            return text

        @server.tool()
        def whoami() -> str:
            """The account the bearer token was issued for."""
            token = get_access_token()
            return (token.subject or "") if token else ""

        @server.tool()
        def list_messages() -> list[dict[str, str]]:
            """A small fixed mailbox."""
            return [dict(m) for m in MESSAGES]

        app = server.streamable_http_app(streamable_http_path="/mcp", host="127.0.0.1")
        # RFC 9728 names the path-suffixed document; some clients probe the bare one first.
        prm_route = create_protected_resource_routes(
            resource_url=server.settings.auth.resource_server_url,  # type: ignore[union-attr]
            authorization_servers=[server.settings.auth.issuer_url],  # type: ignore[union-attr]
            scopes_supported=self.required_scopes,
        )[0]
        app.router.routes.append(
            Route("/.well-known/oauth-protected-resource", endpoint=prm_route.endpoint, methods=["GET", "OPTIONS"])
        )
        return app


class RecordingPeer(_PeerBase):
    """Answers every request with ``status``/``body`` and records it."""

    name = "recording-peer"

    def __init__(self, *, status: int = 200, body: dict[str, Any] | None = None) -> None:
        super().__init__()
        self._initial = (status, body if body is not None else {"recorded": True})
        self.status, self.body = self._initial

    def reset(self) -> None:
        super().reset()
        self.status, self.body = self._initial

    def _build_app(self, base_url: str) -> ASGIApp:
        async def answer(scope: Scope, receive: Receive, send: Send) -> None:
            await JSONResponse(self.body, status_code=self.status)(scope, receive, send)

        return answer


class RedirectingPeer(_PeerBase):
    """Any request to ``/mcp`` (or below) gets ``307`` to ``target`` (settable at any time).

    The `redirecting_peer` fixture points ``target`` at ``recorder`` (a `RecordingPeer`
    on another port, i.e. another origin) and sets ``recorder``.
    """

    name = "redirecting-peer"

    def __init__(self, target: str = "", recorder: RecordingPeer | None = None) -> None:
        super().__init__()
        self.target = target
        self.recorder = recorder

    def _build_app(self, base_url: str) -> ASGIApp:
        async def redirect(request: Request) -> Response:
            return RedirectResponse(self.target, status_code=307)

        async def not_found(request: Request) -> Response:
            return JSONResponse({"error": "not_found"}, status_code=404)

        methods = ["GET", "POST", "DELETE", "PUT", "PATCH", "OPTIONS", "HEAD"]
        return Starlette(
            routes=[
                Route("/mcp", redirect, methods=methods),
                Route("/mcp/{rest:path}", redirect, methods=methods),
                Route("/{rest:path}", not_found, methods=methods),
            ]
        )
