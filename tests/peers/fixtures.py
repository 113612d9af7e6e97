"""Pytest fixtures for the test peers (a plugin: ``pytest_plugins = ["tests.peers.fixtures"]``).

Servers start once per session (uvicorn shutdown costs ~0.3 s each, too much per
test); the function-scoped fixtures hand them out after `reset()`, so each test
sees empty state, zero call records, no injections and default toggles.

- ``oauth_peer``: `OAuthPeer` (auto-approve, issuer ``oauth_peer.issuer``).
- ``mcp_peer``: `MCPPeer` validating tokens against ``oauth_peer``; ``mcp_peer.url``.
- ``redirecting_peer``: `RedirectingPeer` whose ``/mcp`` 307s to
  ``redirecting_peer.recorder.url`` (a `RecordingPeer`, another origin).
- ``recording_peer``: that same `RecordingPeer`.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.peers.mcp_server import MCPPeer, RecordingPeer, RedirectingPeer
from tests.peers.oauth_server import OAuthPeer


@pytest.fixture(scope="session")
def _oauth_peer_server() -> Iterator[OAuthPeer]:
    with OAuthPeer() as peer:
        yield peer


@pytest.fixture(scope="session")
def _mcp_peer_server(_oauth_peer_server: OAuthPeer) -> Iterator[MCPPeer]:
    with MCPPeer(_oauth_peer_server) as peer:
        yield peer


@pytest.fixture(scope="session")
def _recording_peer_server() -> Iterator[RecordingPeer]:
    with RecordingPeer() as peer:
        yield peer


@pytest.fixture(scope="session")
def _redirecting_peer_server(_recording_peer_server: RecordingPeer) -> Iterator[RedirectingPeer]:
    with RedirectingPeer(recorder=_recording_peer_server) as peer:
        yield peer


@pytest.fixture
def oauth_peer(_oauth_peer_server: OAuthPeer) -> OAuthPeer:
    _oauth_peer_server.reset()
    return _oauth_peer_server


@pytest.fixture
def mcp_peer(oauth_peer: OAuthPeer, _mcp_peer_server: MCPPeer) -> MCPPeer:
    _mcp_peer_server.reset()
    return _mcp_peer_server


@pytest.fixture
def recording_peer(_recording_peer_server: RecordingPeer) -> RecordingPeer:
    _recording_peer_server.reset()
    return _recording_peer_server


@pytest.fixture
def redirecting_peer(_redirecting_peer_server: RedirectingPeer, recording_peer: RecordingPeer) -> RedirectingPeer:
    _redirecting_peer_server.reset()
    _redirecting_peer_server.target = recording_peer.url
    return _redirecting_peer_server
