"""In-memory state of the OAuth peer: clients, codes, token families.

A *family* is everything descended from one authorization (one code exchange):
its access tokens and its chain of rotated refresh tokens. Revoking a refresh
token, reusing a rotated one, or `revoke_account` kills the whole family, after
which none of its access or refresh tokens validate.

`Provider` adapts the store to the SDK's `OAuthAuthorizationServerProvider`.
"""

from __future__ import annotations

import secrets
import threading
import time
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mcp.server.auth.provider import (
    AccessToken,
    AuthorizationCode,
    AuthorizationParams,
    OAuthAuthorizationServerProvider,
    RefreshToken,
    TokenError,
)
from mcp.shared.auth import OAuthClientInformationFull, OAuthToken

if TYPE_CHECKING:
    from tests.peers.oauth_server import OAuthPeer

_SECRET_METHODS = frozenset({"client_secret_basic", "client_secret_post"})

# The SDK's ClientAuthenticator verifies the single method stored on the client; the
# front door sets the method the current request actually uses (see oauth_server).
request_auth_method: ContextVar[str | None] = ContextVar("request_auth_method", default=None)


class _LenientScopeClient(OAuthClientInformationFull):
    """A client registered without ``scope`` may request any scope (the SDK would refuse all)."""

    def validate_scope(self, requested_scope: str | None) -> list[str] | None:
        if self.scope is None and requested_scope is not None:
            return requested_scope.split()
        return super().validate_scope(requested_scope)


@dataclass
class _Family:
    """Everything descended from one authorization (one code exchange)."""

    client_id: str
    account: str
    scopes: list[str]
    resource: str | None
    revoked: bool = False


@dataclass
class _Access:
    family: _Family
    scopes: list[str]
    expires_at: int
    revoked: bool = False


@dataclass
class _Refresh:
    family: _Family
    rotated: bool = False


class Store:
    """Thread-safe in-memory state; the SDK handlers (event-loop thread) and the
    test thread both call in, so every method holds the lock and never awaits."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self.clear()

    def clear(self) -> None:
        with self._lock:
            self.clients: dict[str, OAuthClientInformationFull] = {}
            self.codes: dict[str, AuthorizationCode] = {}
            self.parked: dict[str, tuple[str, AuthorizationParams]] = {}
            self.families: list[_Family] = []
            self.access: dict[str, _Access] = {}
            self.refresh: dict[str, _Refresh] = {}

    def add_client(self, info: OAuthClientInformationFull) -> None:
        with self._lock:
            self.clients[info.client_id] = _LenientScopeClient.model_validate(info.model_dump())

    def client(self, client_id: str) -> OAuthClientInformationFull | None:
        with self._lock:
            info = self.clients.get(client_id)
        method = request_auth_method.get()
        if info is None or method is None or info.token_endpoint_auth_method not in _SECRET_METHODS:
            return info
        return info.model_copy(update={"token_endpoint_auth_method": method})

    def park(self, client_id: str, params: AuthorizationParams) -> str:
        request_id = secrets.token_urlsafe(16)
        with self._lock:
            self.parked[request_id] = (client_id, params)
        return request_id

    def pending(self, request_id: str) -> tuple[str, AuthorizationParams] | None:
        with self._lock:
            return self.parked.get(request_id)

    def unpark(self, request_id: str) -> tuple[str, AuthorizationParams] | None:
        with self._lock:
            return self.parked.pop(request_id, None)

    def new_code(self, client_id: str, params: AuthorizationParams, account: str) -> str:
        code = "code_" + secrets.token_urlsafe(24)
        with self._lock:
            client = self.clients.get(client_id)
            default_scopes = client.scope.split() if client and client.scope else []
            self.codes[code] = AuthorizationCode(
                code=code,
                scopes=params.scopes if params.scopes is not None else default_scopes,
                expires_at=time.time() + 300,
                client_id=client_id,
                code_challenge=params.code_challenge,
                redirect_uri=params.redirect_uri,
                redirect_uri_provided_explicitly=params.redirect_uri_provided_explicitly,
                resource=params.resource,
                subject=account,
            )
        return code

    def load_code(self, code: str) -> AuthorizationCode | None:
        with self._lock:
            return self.codes.get(code)

    def exchange_code(self, code: AuthorizationCode, lifetime: int) -> OAuthToken:
        with self._lock:
            # pop, not get: a code racing itself is exchanged once
            if self.codes.pop(code.code, None) is None:
                raise TokenError("invalid_grant", "authorization code already used")
            family = _Family(code.client_id, code.subject or "", list(code.scopes), code.resource)
            self.families.append(family)
            return self._issue(family, family.scopes, lifetime, with_refresh=True)

    def _issue(self, family: _Family, scopes: list[str], lifetime: int, *, with_refresh: bool) -> OAuthToken:
        access = "at_" + secrets.token_urlsafe(32)
        self.access[access] = _Access(family, list(scopes), int(time.time()) + lifetime)
        refresh = None
        if with_refresh:
            refresh = "rt_" + secrets.token_urlsafe(32)
            self.refresh[refresh] = _Refresh(family)
        return OAuthToken(
            access_token=access, expires_in=lifetime, scope=" ".join(scopes) or None, refresh_token=refresh
        )

    def load_refresh(self, token: str) -> RefreshToken | None:
        with self._lock:
            record = self.refresh.get(token)
            if record is None or record.family.revoked:
                return None
            if record.rotated:
                record.family.revoked = True  # reuse of a rotated token: kill the family
                return None
            family = record.family
            return RefreshToken(
                token=token,
                client_id=family.client_id,
                scopes=list(family.scopes),
                resource=family.resource,
                subject=family.account,
            )

    def rotate(self, token: str, scopes: list[str], lifetime: int, *, keep_old: bool) -> OAuthToken:
        with self._lock:
            record = self.refresh.get(token)
            if record is None or record.family.revoked:
                raise TokenError("invalid_grant", "refresh token revoked")
            if record.rotated:
                # two refreshes raced on one token (both passed load_refresh): reuse
                record.family.revoked = True
                raise TokenError("invalid_grant", "refresh token reuse detected; grant revoked")
            record.rotated = not keep_old
            return self._issue(record.family, scopes, lifetime, with_refresh=not keep_old)

    def load_access(self, token: str) -> AccessToken | None:
        with self._lock:
            record = self.access.get(token)
            if record is None or record.revoked or record.family.revoked or record.expires_at <= time.time():
                return None
            family = record.family
            return AccessToken(
                token=token,
                client_id=family.client_id,
                scopes=list(record.scopes),
                expires_at=record.expires_at,
                resource=family.resource,
                subject=family.account,
            )

    def revoke(self, token: str) -> None:
        with self._lock:
            if token in self.access:
                self.access[token].revoked = True
            elif token in self.refresh:
                self.refresh[token].family.revoked = True

    def refresh_active(self, token: str) -> bool:
        with self._lock:
            record = self.refresh.get(token)
            return record is not None and not record.rotated and not record.family.revoked

    def introspect(self, token: str) -> dict[str, Any] | None:
        access = self.load_access(token)
        if access is None:
            return None
        claims: dict[str, Any] = {
            "active": True,
            "sub": access.subject,
            "email": access.subject,
            "username": access.subject,
            "scope": " ".join(access.scopes),
            "exp": access.expires_at,
            "client_id": access.client_id,
            "token_type": "Bearer",
        }
        if access.resource:
            claims["aud"] = access.resource
        return claims

    def expire_all_access(self) -> None:
        with self._lock:
            for record in self.access.values():
                record.expires_at = int(time.time()) - 1

    def revoke_account(self, account: str) -> None:
        with self._lock:
            for family in self.families:
                if family.account == account:
                    family.revoked = True


class Provider(OAuthAuthorizationServerProvider[AuthorizationCode, RefreshToken, AccessToken]):
    """The SDK-facing adapter: async protocol methods over the synchronous store."""

    def __init__(self, store: Store, peer: OAuthPeer) -> None:
        self.store = store
        self.peer = peer

    async def get_client(self, client_id: str) -> OAuthClientInformationFull | None:
        return self.store.client(client_id)

    async def register_client(self, client_info: OAuthClientInformationFull) -> None:
        self.store.add_client(client_info)

    async def authorize(self, client: OAuthClientInformationFull, params: AuthorizationParams) -> str:
        return self.peer._authorization_redirect(client, params)

    async def load_authorization_code(
        self, client: OAuthClientInformationFull, authorization_code: str
    ) -> AuthorizationCode | None:
        return self.store.load_code(authorization_code)

    async def exchange_authorization_code(
        self, client: OAuthClientInformationFull, authorization_code: AuthorizationCode
    ) -> OAuthToken:
        return self.store.exchange_code(authorization_code, self.peer.access_token_lifetime)

    async def load_refresh_token(self, client: OAuthClientInformationFull, refresh_token: str) -> RefreshToken | None:
        return self.store.load_refresh(refresh_token)

    async def exchange_refresh_token(
        self, client: OAuthClientInformationFull, refresh_token: RefreshToken, scopes: list[str]
    ) -> OAuthToken:
        return self.store.rotate(
            refresh_token.token,
            scopes,
            self.peer.access_token_lifetime,
            keep_old=self.peer.omit_refresh_token_on_refresh,
        )

    async def load_access_token(self, token: str) -> AccessToken | None:
        return self.store.load_access(token)

    async def revoke_token(self, token: AccessToken | RefreshToken) -> None:
        self.store.revoke(token.token)
