"""Signals other parts of the portal connect to, so account code needs no import of theirs.

``user_disabled`` — sent by ``accounts.set_disabled(..., True)`` as
``user_disabled.send(app, user=user)``:

* ``sender`` is the Flask application (``current_app._get_current_object()``); connect with
  ``user_disabled.connect(receiver, sender=app)`` in an ``init_app`` to listen to one app only.
* It is sent inside the caller's database transaction, after the user row is marked disabled
  and its sessions ended, and before the commit. A receiver works through ``db.session`` (and
  may call ``audit.record``) but never commits or rolls back: its changes commit together with
  the disable, or not at all.
* A receiver that raises aborts the disable: the whole transaction is rolled back and the admin
  sees an error. So raise only when the user must not be left half-disabled; do slow network
  work (such as provider revocation) after the commit, not in the receiver.
* blinker holds receivers weakly: connect a module-level function, or pass ``weak=False``.

The OAuth connection code connects a receiver that disables the user's connections locally and
queues their revocation (SECURITY.md item 13).

``server_deleting`` — sent by ``portal.servers.delete_server`` as
``server_deleting.send(app, server=server, actor=user)``, with the same rules as above: inside
the caller's transaction, after the access check and before the ``server.deleted`` audit event
and the row's deletion (``connections`` and ``oauth_states`` rows of the server go with it by
ON DELETE CASCADE at the flush that follows). A receiver revokes or detaches the server's
connections through ``db.session`` and never commits; raising aborts the delete.
"""
from blinker import Namespace

_signals = Namespace()

user_disabled = _signals.signal(
    "portal.user-disabled",
    doc="A user was disabled; sender is the app, keyword ``user``; sent before commit.",
)

server_deleting = _signals.signal(
    "portal.server-deleting",
    doc="An MCP server is about to be deleted; sender is the app, keywords ``server``, ``actor``; sent before commit.",
)
