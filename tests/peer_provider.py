"""A provider plugin for the local OAuth peer, and fixtures that wire it into a test app.

``PeerProvider(base_url)`` is an ordinary ``OAuthProvider`` whose endpoints are the peer's; tests
inject it with the app config ``EXTRA_PROVIDERS`` (the registry accepts plain-http loopback
endpoints). Credentials come from the app config (``PEER_CLIENT_ID`` / ``PEER_CLIENT_SECRET``,
the names ``setting_specs()`` derives), and the fixtures enable the provider for the team.

Use in a test module: ``pytest_plugins = ["tests.peers.fixtures"]`` and import the fixtures
(``from tests.peer_provider import peer_app_config, peer_user``).
"""
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
from sqlalchemy import update

from portal.extensions import db
from portal.models import Connection, MCPServer, utcnow
from portal.providers.base import OAuthProvider

CLIENT_ID, CLIENT_SECRET = "portal-test", "portal-test-secret-value-0123456789"
REDIRECT_URI = "http://localhost/auth/oauth/callback"
NONCE = "test-session-nonce"


class PeerProvider(OAuthProvider):
    name = "peer"
    title = "Peer Mail"
    icon = "PM"
    scopes = ("mail.read",)
    requires_iss = True

    def __init__(self, base_url, name="peer", title="Peer Mail"):
        self.name, self.title = name, title
        self.authorize_url = base_url + "/authorize"
        self.token_url = base_url + "/token"
        self.revoke_url = base_url + "/revoke"
        self.userinfo_url = base_url + "/userinfo"
        self.issuer = base_url

    def detect(self, url):
        return urlsplit(url).path.rstrip("/").endswith("/peer-mail")


def peer_config(base_url, redirect_uri=REDIRECT_URI):
    """App config that installs the peer provider and its credentials."""
    return {"EXTRA_PROVIDERS": [PeerProvider(base_url)], "PEER_CLIENT_ID": CLIENT_ID,
            "PEER_CLIENT_SECRET": CLIENT_SECRET, "OAUTH_REDIRECT_URI": redirect_uri}


@pytest.fixture
def peer_app_config(app_config, oauth_peer):
    """``app_config`` with the peer provider installed and the portal registered at the peer."""
    app_config.update(peer_config(oauth_peer.base_url))
    oauth_peer.register_client(CLIENT_ID, CLIENT_SECRET, [REDIRECT_URI], ["mail.read", "mail.send"])
    return app_config


def enable_peer(team_id, name="peer"):
    from portal.providers import settings

    db.session.commit()  # a fresh transaction: SQLite refuses a write from a stale snapshot
    settings.set_enabled(team_id, name, True)
    db.session.commit()


def add_server(user, name="Peer inbox", url="http://127.0.0.1:9/u/1/peer-mail", provider="peer",
               visibility="personal"):
    db.session.commit()  # a fresh transaction: SQLite refuses a write from a stale snapshot
    server = MCPServer(team_id=user.team_id, owner_id=user.id, name=name, url=url, provider=provider,
                       visibility=visibility)
    db.session.add(server)
    db.session.commit()
    return server


def authorize_at_peer(oauth_url):
    """Follow the peer's authorization redirects (consent page included) up to the portal's
    callback; returns the callback's query parameters."""
    with httpx.Client(follow_redirects=False, timeout=10) as browser:
        response = browser.get(oauth_url)
        while response.is_redirect and not response.headers["location"].startswith(REDIRECT_URI):
            response = browser.get(response.headers["location"])
        if response.status_code == 200 and "<form" in response.text:  # the consent page
            request_id = dict(parse_qsl(urlsplit(str(response.url)).query))["request"]
            response = browser.post(str(response.url.join("/consent")), data={"request": request_id, "decision": "allow"})
    assert response.is_redirect, response.text
    return dict(parse_qsl(urlsplit(response.headers["location"]).query))


def connect(user, server, provider="peer", nonce=NONCE):
    """Run the real flow through the services: start, the peer's redirects, complete."""
    from portal.oauth import flows

    started = flows.start(user, server, provider, nonce)
    return flows.complete(user, nonce, authorize_at_peer(started["oauth_url"]))


def expire(connection_id, seconds_ago=1):
    """Make the stored token look expired (the peer's own copy is expired separately)."""
    from datetime import timedelta

    db.session.commit()  # a fresh transaction: SQLite refuses a write from a stale snapshot
    db.session.execute(update(Connection).where(Connection.id == connection_id)
                       .values(expires_at=utcnow() - timedelta(seconds=seconds_ago)))
    db.session.commit()


def connection_of(user, server, provider="peer"):
    db.session.commit()  # a new transaction: SQLite's snapshot then sees what the services committed
    return db.session.scalar(db.select(Connection).where(
        Connection.user_id == user.id, Connection.server_id == server.id, Connection.provider == provider))


def events(action=None):
    """Audit events (optionally of one action), oldest first."""
    from portal.models import AuditEvent

    db.session.commit()
    query = db.select(AuditEvent).order_by(AuditEvent.id)
    if action is not None:
        query = query.where(AuditEvent.action == action)
    return db.session.scalars(query).all()


@pytest.fixture
def peer_user(peer_app_config, app, make_user):
    """A member whose team has the peer provider enabled."""
    user = make_user("alice@a.test")
    enable_peer(user.team_id)
    return user


@pytest.fixture
def alice(peer_user, auth):
    """``peer_user``, signed in on the test client."""
    auth.login(peer_user.email)
    return peer_user


@pytest.fixture
def server(alice):
    """A server of alice's that uses the peer provider."""
    return add_server(alice)
