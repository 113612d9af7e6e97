"""The token vault cipher: AES-256-GCM with a keyring, key ids and row-bound associated data.

A sealed value reads ``v1.<key id>.<base64url(nonce || ciphertext+tag)>``. The associated data is
the row's ``sealing_context(column)`` (table, column and the row's identity), so a ciphertext
copied into another row or column does not open. The keyring has one primary key, which seals,
and older keys, which only open; ``rotate`` re-seals every sealed column onto the primary.
"""
import base64
import binascii
import os
import re

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from flask import current_app

PREFIX = "v1"
KEY_ID = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
B64URL = re.compile(r"^[A-Za-z0-9_-]*={0,2}$")


class SealError(Exception):
    """A sealed value could not be opened: wrong row, unknown key, or tampered bytes."""


def _b64decode(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _b64encode(data):
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


class Keyring:
    """Keys by id; the first one given is the primary."""

    def __init__(self, keys):
        if not keys:
            raise ValueError("a keyring needs at least one key")
        self.keys = dict(keys)
        self.primary_id = keys[0][0]

    @classmethod
    def parse(cls, text):
        """Read ``id:base64url-32-bytes[,id:key...]`` (PORTAL_ENCRYPTION_KEYS); primary first."""
        entries = []
        for item in filter(None, (part.strip() for part in str(text).split(","))):
            key_id, _, encoded = item.partition(":")
            if not KEY_ID.match(key_id):
                raise ValueError("PORTAL_ENCRYPTION_KEYS: a key id must be 1-32 letters, digits, - or _")
            try:
                if not B64URL.match(encoded):
                    raise ValueError("not base64url")
                key = _b64decode(encoded)
            except (binascii.Error, ValueError):
                raise ValueError(f"PORTAL_ENCRYPTION_KEYS: key {key_id} is not base64url") from None
            if len(key) != 32:
                raise ValueError(f"PORTAL_ENCRYPTION_KEYS: key {key_id} must be 32 bytes (AES-256)")
            if key_id in dict(entries):
                raise ValueError(f"PORTAL_ENCRYPTION_KEYS: key id {key_id} appears twice")
            entries.append((key_id, key))
        if not entries:
            raise ValueError("PORTAL_ENCRYPTION_KEYS: needs at least one key, written id:base64url-32-bytes")
        return cls(entries)

    def seal(self, plaintext, context):
        nonce = os.urandom(12)
        sealed = AESGCM(self.keys[self.primary_id]).encrypt(nonce, plaintext.encode(), context.encode())
        return f"{PREFIX}.{self.primary_id}.{_b64encode(nonce + sealed)}"

    def open(self, value, context):
        key_id = key_id_of(value)
        if key_id not in self.keys:
            raise SealError(f"sealed with unknown key {key_id!r}")
        try:
            blob = _b64decode(value.split(".", 2)[2])
            return AESGCM(self.keys[key_id]).decrypt(blob[:12], blob[12:], context.encode()).decode()
        except (InvalidTag, ValueError, binascii.Error, IndexError):
            raise SealError("sealed value does not open for this row") from None


def key_id_of(value):
    parts = str(value).split(".", 2)
    if len(parts) != 3 or parts[0] != PREFIX:
        raise SealError("not a sealed value")
    return parts[1]


def init_app(app):
    try:
        app.extensions["portal.keyring"] = Keyring.parse(app.config["ENCRYPTION_KEYS"])
    except ValueError as error:
        from portal.config import ConfigError

        raise ConfigError(str(error)) from None


def keyring():
    return current_app.extensions["portal.keyring"]


def seal_field(row, column, plaintext):
    """Set ``row.column`` to ``plaintext`` sealed for that row, or to None."""
    value = None if plaintext is None else keyring().seal(plaintext, row.sealing_context(column))
    setattr(row, column, value)


def open_field(row, column):
    """The plaintext of ``row.column`` (None stays None); raises SealError if it does not open."""
    value = getattr(row, column)
    return None if value is None else keyring().open(value, row.sealing_context(column))
