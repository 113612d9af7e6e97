"""Which servers and connections a user may act on (SECURITY.md item 26).

A user connects a server they can use: their own personal servers and the servers shared with
their team. Connections are personal: a user sees, refreshes and revokes only their own. Any
other id (another user's, another team's, or one that does not exist) is ``NotFound``, so ids
do not leak.
"""
from sqlalchemy import bindparam, func, or_, select

from portal.errors import BadInput, NotFound
from portal.extensions import db
from portal.models import Connection, MCPServer
from portal.providers.base import NAME_PATTERN

MAX_ID = 2**31 - 1
SERVER_NOT_FOUND = ("That MCP server does not exist.", "Check the list on Settings.")
CONNECTION_NOT_FOUND = ("You have no connection for that server.", "Connect it on Settings first.")


def parse_id(value, label="server_id"):
    """A positive integer id from JSON or a form; BadInput for anything else."""
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadInput(f"{label} must be a positive whole number.")
    if not 0 < value <= MAX_ID:
        raise NotFound(*SERVER_NOT_FOUND)
    return value


def parse_provider(value):
    """An optional provider name; BadInput if it cannot be one."""
    if value in (None, ""):
        return None
    if not isinstance(value, str) or not NAME_PATTERN.match(value):
        raise BadInput("provider must be a provider name such as \"gmail\".")
    return value


def _usable_by(user):
    return (MCPServer.team_id == user.team_id) & or_(MCPServer.owner_id == user.id, MCPServer.visibility == "team")


def usable_servers(user):
    """The servers ``user`` can connect: own personal ones and the team's shared ones, by name."""
    return list(db.session.scalars(select(MCPServer).where(_usable_by(user)).order_by(MCPServer.name, MCPServer.id)))


def usable_server(user, server_id):
    server = db.session.scalar(select(MCPServer).where(MCPServer.id == server_id, _usable_by(user)))
    if server is None:
        raise NotFound(*SERVER_NOT_FOUND)
    return server


def own_connections(user):
    """``[(connection, server)]`` of ``user``, by server name (a connection stays the user's own
    even if the server is no longer shared with them, so they can always disconnect it)."""
    statement = (select(Connection, MCPServer).join(MCPServer, MCPServer.id == Connection.server_id)
                 .where(Connection.user_id == user.id)
                 .order_by(MCPServer.name, MCPServer.id, Connection.provider))
    return [tuple(row) for row in db.session.execute(statement)]


def _overview_statement():
    joined = (Connection.server_id == MCPServer.id) & (Connection.user_id == bindparam("user_id"))
    visible = or_(MCPServer.owner_id == bindparam("user_id"), MCPServer.visibility == "team",
                  Connection.id.is_not(None))
    return (select(MCPServer.id.label("sid"), MCPServer.name.label("server_name"), MCPServer.visibility,
                   MCPServer.provider.label("server_provider"), Connection.id, Connection.server_id,
                   Connection.provider, Connection.status, Connection.access_token, Connection.refresh_token,
                   Connection.expires_at, Connection.scope, Connection.account_label, Connection.last_refresh_at)
            .outerjoin(Connection, joined).where(MCPServer.team_id == bindparam("team_id"), visible)
            .order_by(func.lower(MCPServer.name), MCPServer.id, Connection.provider))


# Built once and reused with new parameters: the Settings fragment runs it every 15 s per user.
_OVERVIEW = _overview_statement()


def overview(user):
    """One row per (server, connection) for the Settings page, in one query of plain columns: the
    servers ``user`` can use, and any server they hold a connection to. A server without a
    connection comes once, with the connection's columns None."""
    # Core on the session's own connection: no second pool checkout, no ORM result machinery.
    return db.session.connection().execute(_OVERVIEW, {"user_id": user.id, "team_id": user.team_id}).all()


def own_connection(user, server_id, provider=None):
    """The caller's connection to ``server_id`` (for ``provider``; without it, the only one or
    the one for the server's own provider)."""
    matches = [(c, s) for c, s in own_connections(user) if c.server_id == server_id]
    if provider is not None:
        matches = [(c, s) for c, s in matches if c.provider == provider]
    elif len(matches) > 1:
        matches = [(c, s) for c, s in matches if c.provider == s.provider]
        if len(matches) != 1:
            raise BadInput("You have several connections for that server.", "Say which one with ?provider=.")
    if not matches:
        raise NotFound(*CONNECTION_NOT_FOUND)
    return matches[0][0]
