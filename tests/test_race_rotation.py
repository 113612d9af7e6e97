"""Online key rotation while refreshes run (SECURITY.md item 15): every row ends on the new key
and no refresh is lost (each connection holds the one refresh token the provider still honours)."""
import base64
import os
import threading

import pytest

from portal import create_app
from portal.crypto import SealError, keyring
from portal.extensions import db
from portal.key_rotation import rotate, stale_keys_in_use
from portal.models import Connection
from portal.oauth import vault
from portal.oauth.refresh import refresh_connection
from tests.peer_provider import add_server, connect, connection_of, events
from tests.peer_provider import peer_app_config, peer_user  # noqa: F401  (fixtures)

pytestmark = pytest.mark.usefixtures("peer_app_config")
CONNECTIONS, REFRESHED, ROUNDS = 8, 5, 4


def new_primary(old_keys):
    key = base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")
    return f"t2:{key},{old_keys}"


def test_rotation_during_refreshes_moves_every_row_and_loses_no_refresh(app, app_config, peer_user, oauth_peer):
    servers = [add_server(peer_user, name=f"Inbox {n}") for n in range(CONNECTIONS)]
    for server in servers:
        connect(peer_user, server)
    ids = [connection_of(peer_user, server).id for server in servers]
    rotated_app = create_app({**app_config, "ENCRYPTION_KEYS": new_primary(app_config["ENCRYPTION_KEYS"])})
    oauth_peer.delay_refresh = 0.05  # refreshes hold their row locks while rotation sweeps by
    errors, reports = [], []

    def refresher(connection_id):
        with rotated_app.app_context():
            for _ in range(ROUNDS):
                try:
                    refresh_connection(connection_id, force=True)
                except Exception as error:  # reported below
                    errors.append(repr(error))

    def rotator():
        with rotated_app.app_context():
            for _ in range(3):
                try:
                    reports.append(rotate(keyring(), batch_size=2))
                except Exception as error:
                    errors.append(repr(error))

    threads = [threading.Thread(target=refresher, args=(i,)) for i in ids[:REFRESHED]]
    threads.append(threading.Thread(target=rotator))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors[:3]

    with rotated_app.app_context():
        assert stale_keys_in_use(keyring()) == []
        rows = {row.id: row for row in db.session.scalars(db.select(Connection))}
        for connection_id in ids:
            row = rows[connection_id]
            assert row.access_token.startswith("v1.t2.") and row.refresh_token.startswith("v1.t2.")
            access, refresh = vault.open_token(row), vault.open_token(row, "refresh_token")
            assert oauth_peer.introspect(access)["active"] is True  # the latest access token
            assert oauth_peer.is_refresh_token_active(refresh)  # the one refresh token still honoured
        db.session.remove()
        rotated_app.extensions["sqlalchemy"].engines[None].dispose()

    first = connection_of(peer_user, servers[0])
    with pytest.raises(SealError):  # the old keyring alone no longer opens anything
        keyring().open(first.access_token, first.sealing_context("access_token"))
    assert sum(report.resealed for report in reports) >= CONNECTIONS - REFRESHED
    succeeded = [call for call in oauth_peer.calls_to("token", "refresh_token") if call["status"] == 200]
    assert len(succeeded) == REFRESHED * ROUNDS == len(events("token.refreshed"))
