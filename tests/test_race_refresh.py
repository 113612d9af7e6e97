"""Single-flight refresh across threads and processes, and locks that a killed holder releases.

The race: 20 threads in each of 4 processes (spawned, each building its own app on the same
database) ask for the token of one expired connection, against the peer that rotates refresh
tokens and revokes the whole family when a rotated one is reused. Exactly one refresh request
may reach it, every caller must get the same new token, and the family must stay valid. Runs
on SQLite, and on PostgreSQL when PORTAL_TEST_DATABASE_URL is set (CI runs both).
"""
import multiprocessing
import os
import signal
import socket
import threading
import time

import pytest

from portal.oauth import vault
from portal.oauth.errors import RefreshBusy
from tests.peer_provider import PeerProvider, add_server, connect, connection_of, events, expire
from tests.peer_provider import peer_app_config, peer_user  # noqa: F401  (fixtures)

pytestmark = pytest.mark.usefixtures("peer_app_config")
PROCESSES, THREADS = 4, 20


def _race_worker(config, user_id, server_id, threads, barrier, results):
    """One process: its own app, ``threads`` threads released together with the other processes."""
    from portal import create_app
    from portal.extensions import db

    app = create_app(config)
    tokens, errors = [], []
    gate = threading.Barrier(threads + 1)

    def ask():
        with app.app_context():
            gate.wait()
            try:
                tokens.append(vault.valid_access_token(user_id, server_id))
            except Exception as error:  # reported to the parent, which fails the test
                errors.append(repr(error))

    workers = [threading.Thread(target=ask) for _ in range(threads)]
    for worker in workers:
        worker.start()
    barrier.wait(timeout=60)  # every process is ready: go
    gate.wait()
    for worker in workers:
        worker.join(120)
    with app.app_context():
        db.engine.dispose()
    results.put((os.getpid(), tokens, errors))


def child_config(app_config):
    return {key: value for key, value in app_config.items()}


@pytest.fixture
def expired_connection(peer_user, oauth_peer):
    server = add_server(peer_user)
    connect(peer_user, server)
    connection = connection_of(peer_user, server)
    old_refresh = vault.open_token(connection, "refresh_token")
    expire(connection.id)
    oauth_peer.expire_all_access_tokens()
    return peer_user, server, old_refresh


def test_many_threads_in_many_processes_refresh_once(app_config, expired_connection, oauth_peer):
    user, server, old_refresh = expired_connection
    oauth_peer.delay_refresh = 0.5  # the winner holds the lock a while: everyone else piles up behind it
    spawn = multiprocessing.get_context("spawn")
    barrier, results = spawn.Barrier(PROCESSES), spawn.Queue()
    processes = [spawn.Process(target=_race_worker, args=(child_config(app_config), user.id, server.id, THREADS,
                                                          barrier, results)) for _ in range(PROCESSES)]
    for process in processes:
        process.start()
    outcomes = [results.get(timeout=180) for _ in processes]
    for process in processes:
        process.join(30)
    tokens = [token for _, found, _ in outcomes for token in found]
    errors = [error for _, _, found in outcomes for error in found]
    assert not errors, errors[:3]
    assert len(tokens) == PROCESSES * THREADS and len({pid for pid, _, _ in outcomes}) == PROCESSES
    assert len(set(tokens)) == 1, "callers got different tokens"
    assert oauth_peer.refresh_calls == 1
    connection = connection_of(user, server)
    assert vault.open_token(connection) == tokens[0]
    assert oauth_peer.introspect(tokens[0])["active"] is True  # the family is still valid
    assert oauth_peer.is_refresh_token_active(vault.open_token(connection, "refresh_token"))
    assert not oauth_peer.is_refresh_token_active(old_refresh)
    assert len(events("token.refreshed")) == 1


def test_many_threads_in_one_process_refresh_once(app, expired_connection, oauth_peer):
    user, server, _ = expired_connection
    user_id, server_id = user.id, server.id  # plain ids: the test's own session is not for threads
    oauth_peer.delay_refresh = 0.3
    tokens, errors = [], []

    def ask():
        with app.app_context():
            try:
                tokens.append(vault.valid_access_token(user_id, server_id))
            except Exception as error:
                errors.append(repr(error))

    threads = [threading.Thread(target=ask) for _ in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors and len(tokens) == 50 and len(set(tokens)) == 1
    assert oauth_peer.refresh_calls == 1


class BlackHole:
    """A loopback port that accepts a connection, reads the request and never answers: a token
    endpoint that hangs, so a refresh holds its lock until it is killed."""

    def __init__(self):
        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        self.socket.listen(8)
        self.url = f"http://127.0.0.1:{self.socket.getsockname()[1]}"
        self.received = threading.Event()
        self.connections = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        connection, _ = self.socket.accept()
        self.connections.append(connection)
        data = b""
        while b"grant_type=refresh_token" not in data:
            chunk = connection.recv(65536)
            if not chunk:
                return
            data += chunk
        self.received.set()

    def close(self):
        for connection in self.connections:
            connection.close()
        self.socket.close()


def _refresh_into_the_void(config, user_id, server_id):
    """A worker whose refresh hangs at the token endpoint, holding the connection's lock."""
    from portal import create_app

    app = create_app(config)
    with app.app_context():
        vault.valid_access_token(user_id, server_id)


def test_refresh_holder_killed_with_sigkill_does_not_leave_the_connection_locked(app, app_config, expired_connection,
                                                                                   oauth_peer):
    user, server, _ = expired_connection
    hole = BlackHole()
    hanging = PeerProvider(oauth_peer.base_url)
    hanging.token_url = hole.url + "/token"
    config = {**child_config(app_config), "EXTRA_PROVIDERS": [hanging], "OAUTH_HTTP_TIMEOUT": 300}
    holder = multiprocessing.get_context("spawn").Process(target=_refresh_into_the_void,
                                                          args=(config, user.id, server.id))
    holder.start()
    try:
        assert hole.received.wait(60), "the holder never reached the token endpoint"
        app.config["OAUTH_LOCK_TIMEOUT"] = 0.5
        started = time.monotonic()
        with pytest.raises(RefreshBusy) as raised:  # locked: a waiter gives up, in bounded time
            vault.valid_access_token(user.id, server.id)
        assert time.monotonic() - started < 3
        assert "did not finish in time" in raised.value.message
        assert oauth_peer.refresh_calls == 0

        os.kill(holder.pid, signal.SIGKILL)
        holder.join(30)
        assert holder.exitcode == -signal.SIGKILL
        started = time.monotonic()
        token = vault.valid_access_token(user.id, server.id)  # the lock died with the holder
        assert time.monotonic() - started < 3
    finally:
        if holder.is_alive():
            holder.kill()
        hole.close()
    assert oauth_peer.refresh_calls == 1 and oauth_peer.introspect(token)["active"] is True
    assert connection_of(user, server).status == "connected"
