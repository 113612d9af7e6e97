"""Run a Starlette/ASGI app with uvicorn in a background thread on 127.0.0.1.

`ServerThread(app_factory)` binds the socket *before* building the app, so the
factory receives the final base URL (``http://127.0.0.1:<port>``) and can bake
it into metadata (issuer, resource URL) even when the port is chosen by the OS
(port=0).

Standalone demo (both peers in one process, Ctrl-C to stop)::

    python -m tests.peers.runner --oauth-port 8901 --mcp-port 8902 \
        --client-id portal --client-secret s3cret \
        --redirect-uri http://127.0.0.1:5000/oauth/callback
"""

from __future__ import annotations

import argparse
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import uvicorn

HOST = "127.0.0.1"

AppFactory = Callable[[str], Any]


class ServerThread:
    """A uvicorn server serving ``app_factory(base_url)`` from a daemon thread.

    Contract: `start()` returns only once the server accepts connections (or
    raises `RuntimeError`); `stop()` is idempotent and joins the thread.
    """

    def __init__(self, app_factory: AppFactory, *, port: int = 0, name: str = "peer") -> None:
        self._app_factory = app_factory
        self._requested_port = port
        self._name = name
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.port: int | None = None
        self.base_url: str | None = None

    def start(self, timeout: float = 10.0) -> str:
        if self._thread is not None:
            raise RuntimeError(f"{self._name} already started")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, self._requested_port))
        except OSError:
            sock.close()
            raise
        self.port = sock.getsockname()[1]
        self.base_url = f"http://{HOST}:{self.port}"
        config = uvicorn.Config(
            self._app_factory(self.base_url),
            loop="asyncio",
            http="h11",
            ws="none",
            lifespan="auto",
            # log_config=None: do not let uvicorn dictConfig() the test process' logging.
            log_config=None,
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=2,
            timeout_keep_alive=5,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name=f"{self._name}:{self.port}", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self._name} failed to start on {self.base_url}")
            time.sleep(0.005)
        return self.base_url

    def stop(self, timeout: float = 10.0) -> None:
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        server.should_exit = True
        thread.join(timeout)
        self._server = None
        self._thread = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()


def main(argv: list[str] | None = None) -> None:
    """Run the OAuth peer and the MCP peer until interrupted."""
    from tests.peers.mcp_server import MCPPeer
    from tests.peers.oauth_server import OAuthPeer

    parser = argparse.ArgumentParser(description="Run the local OAuth + MCP test peers.")
    parser.add_argument("--oauth-port", type=int, default=8901)
    parser.add_argument("--mcp-port", type=int, default=8902)
    parser.add_argument("--client-id", help="pre-register a confidential client with this id")
    parser.add_argument("--client-secret", default="secret")
    parser.add_argument("--redirect-uri", action="append", default=[], help="repeatable")
    parser.add_argument("--scope", action="append", default=[], help="repeatable; client's allowed scopes")
    parser.add_argument("--consent", action="store_true", help="show the Allow/Deny page instead of auto-approving")
    parser.add_argument("--account", default=None, help="account (sub/email) for issued tokens")
    args = parser.parse_args(argv)
    if args.client_id and not args.redirect_uri:
        parser.error("--client-id needs at least one --redirect-uri")

    oauth = OAuthPeer(auto_approve=not args.consent)
    oauth.start(port=args.oauth_port)
    if args.account:
        oauth.next_account = args.account
    if args.client_id:
        oauth.register_client(args.client_id, args.client_secret, args.redirect_uri, args.scope or None)
    mcp = MCPPeer(oauth)
    mcp.start(port=args.mcp_port)
    print(f"OAuth issuer : {oauth.issuer}")
    print(f"  metadata   : {oauth.metadata_url}")
    print(f"MCP endpoint : {mcp.url}")
    print(f"  PRM        : {mcp.resource_metadata_url}")
    print("Ctrl-C (or SIGTERM) to stop.", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        mcp.stop()
        oauth.stop()


if __name__ == "__main__":
    main()


class Lifecycle:
    """``stop()`` and ``with`` support for a peer whose ``start()`` sets ``self._server``."""

    _server: "ServerThread | None" = None

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
