"""The keyring: parsing PORTAL_ENCRYPTION_KEYS, and ciphertexts bound to their row and column."""
import base64
from datetime import timedelta

import pytest

from portal import create_app
from portal.config import ConfigError, new_keyring_entry
from portal.crypto import Keyring, SealError, open_field, seal_field
from portal.extensions import db
from portal.models import Connection, MCPServer, utcnow
from tests.support import TEST_KEYS

KEY_B64 = base64.urlsafe_b64encode(b"k" * 32).decode().rstrip("=")


@pytest.mark.parametrize("text, message", [
    ("", "needs at least one key"),
    (" , ", "needs at least one key"),
    ("bad id!:" + KEY_B64, "key id must be 1-32 letters"),
    (":" + KEY_B64, "key id must be 1-32 letters"),
    ("k1:" + "A" * 10, "must be 32 bytes"),
    ("k1", "must be 32 bytes"),
    ("k1:" + "*" * 43, "not base64url"),
    (f"k1:{KEY_B64},k1:{KEY_B64}", "appears twice"),
])
def test_parse_keyring_fails_with_named_variable(text, message):
    with pytest.raises(ValueError, match=message) as raised:
        Keyring.parse(text)
    assert "PORTAL_ENCRYPTION_KEYS" in str(raised.value)


def test_parse_keyring_takes_first_entry_as_primary():
    second = new_keyring_entry("old")
    keyring = Keyring.parse(f" new:{KEY_B64} , {second}")
    assert keyring.primary_id == "new" and set(keyring.keys) == {"new", "old"}


def test_create_app_refuses_malformed_keyring(database_url):
    with pytest.raises(ConfigError, match="PORTAL_ENCRYPTION_KEYS"):
        create_app({**TEST_KEYS, "ENCRYPTION_KEYS": "k1:tooshort", "SQLALCHEMY_DATABASE_URI": database_url})


def test_open_sealed_value_fails_when_tampered_or_key_unknown():
    keyring = Keyring.parse(f"k1:{KEY_B64}")
    sealed = keyring.seal("secret-value", "ctx")
    assert keyring.open(sealed, "ctx") == "secret-value"
    assert sealed.startswith("v1.k1.") and "secret-value" not in sealed
    flipped = sealed[:-2] + ("A" if sealed[-2] != "A" else "B") + sealed[-1]
    for bad in (flipped, sealed.replace("v1.k1.", "v1.k9.", 1), "plain text", "v1.k1.!!!"):
        with pytest.raises(SealError):
            keyring.open(bad, "ctx")
    with pytest.raises(SealError):
        keyring.open(sealed, "other ctx")


def _connection(user, name):
    server = MCPServer(team_id=user.team_id, owner_id=user.id, name=name, url=f"https://{name}.example/mcp")
    db.session.add(server)
    db.session.flush()
    row = Connection(user_id=user.id, server_id=server.id, provider="gmail", expires_at=utcnow() + timedelta(hours=1))
    seal_field(row, "access_token", f"access-{name}")
    seal_field(row, "refresh_token", f"refresh-{name}")
    db.session.add(row)
    db.session.commit()
    return row


def test_open_field_fails_when_ciphertext_copied_into_another_row(app, admin, member):
    mine, theirs = _connection(admin, "a"), _connection(member, "b")
    assert open_field(theirs, "access_token") == "access-b"
    theirs.access_token = mine.access_token
    db.session.commit()
    with pytest.raises(SealError):
        open_field(theirs, "access_token")
    mine.refresh_token = mine.access_token  # another column of the same row does not open either
    with pytest.raises(SealError):
        open_field(mine, "refresh_token")
