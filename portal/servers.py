"""MCP servers: members add, rename and remove them; admins share them with the team.

Access rule (SECURITY 26): a server is visible to its owner, to every member of its team when
shared (visibility ``team``), and to the team's admins; it may be changed by its owner while
personal and by any admin of its team. Anything else raises ``NotFound`` (404), so ids do not
leak. Services flush and audit; the caller commits.

Deleting a server sends ``portal.signals.server_deleting`` inside the transaction, before the
row goes, so the OAuth code can revoke the server's connections in the same commit.
"""
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx2
from flask import current_app
from sqlalchemy import or_, select

from portal import audit
from portal.errors import BadInput, Forbidden, NotFound
from portal.extensions import db
from portal.models import VISIBILITIES, MCPServer
from portal.providers import settings
from portal.providers.registry import registry
from portal.signals import server_deleting

MAX_NAME = 120
MAX_URL = 2048
MAX_ID = 2**31 - 1  # the id column is a 32-bit INTEGER on PostgreSQL; larger ids cannot exist
AUTO = "auto"
NOT_FOUND = ("That MCP server does not exist.", "Check the list of servers.")


def usable_providers(team_id):
    """``{name: provider}`` the team can connect with: the one place this module asks."""
    return settings.usable_providers(team_id)


def _encodable(value):
    """False for text a database cannot store (lone surrogates from JSON escapes)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_name(name):
    """The cleaned display name, or BadInput."""
    hint = f"Give the server a short name (1 to {MAX_NAME} characters)."
    if name is None:
        raise BadInput("Enter a name for the server.", hint)
    if not isinstance(name, str):
        raise BadInput("The name must be text.", hint)
    name = name.strip()
    if not name or len(name) > MAX_NAME:
        raise BadInput(f"The name must be 1 to {MAX_NAME} characters.", hint)
    if any(ord(char) < 32 or ord(char) == 127 for char in name) or not _encodable(name):
        raise BadInput("The name contains control characters or invalid text.", hint)
    return name


def check_url(url, production=None):
    """The cleaned MCP server URL, or BadInput naming what is wrong with it."""
    hint = "Paste the server's URL, e.g. https://mcp.example.com/mcp."
    if url is None or (isinstance(url, str) and not url.strip()):
        raise BadInput("Enter the MCP server's URL.", hint)
    if not isinstance(url, str):
        raise BadInput("The URL must be text.", hint)
    url = url.strip()
    if len(url) > MAX_URL:
        raise BadInput(f"The URL is too long (at most {MAX_URL} characters).", hint)
    if any(char.isspace() or ord(char) < 32 or ord(char) == 127 for char in url) or not _encodable(url):
        raise BadInput("The URL contains spaces, control characters or invalid text.", hint)
    if "#" in url:
        raise BadInput("The URL must not contain a #fragment.", hint)
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 — raises ValueError for a port out of range
        httpx2.URL(url)  # what the MCP client will parse
    except (ValueError, httpx2.InvalidURL):
        raise BadInput("That is not a valid URL.", hint) from None
    _check_url_parts(parts, current_app.config.get("PRODUCTION") if production is None else production, hint)
    return url


def _check_url_parts(parts, production, hint):
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise BadInput("The URL must start with https:// (or http:// outside production).", hint)
    if production and scheme != "https":
        raise BadInput("The URL must use https:// in production.", "Tokens are never sent over plain http here.")
    if "@" in parts.netloc:
        raise BadInput("The URL must not contain a user name or password.",
                       "Remove the user:password@ part; the portal sends OAuth tokens itself.")
    if not parts.hostname:
        raise BadInput("The URL needs a host name.", hint)


@dataclass
class Detection:
    """What the live detection shows: the matching usable providers, or why the URL is unusable."""

    url: str
    providers: list = field(default_factory=list)
    problem: str | None = None

    @property
    def provider(self):
        return self.providers[0] if len(self.providers) == 1 else None


def detect(url, team_id):
    """Ask every provider usable by the team whether it claims ``url``."""
    try:
        url = check_url(url)
    except BadInput as error:
        return Detection(url=url if isinstance(url, str) else "", problem=error.message)
    return Detection(url=url, providers=registry().detect(url, names=set(usable_providers(team_id))))


def _choose_provider(choice, url, team_id):
    """The provider name to store: a usable name, ``auto`` (detected if unambiguous) or None."""
    if choice is None:
        return None
    if not isinstance(choice, str):
        raise BadInput("The provider must be a provider name, \"auto\" or null.")
    choice = choice.strip()
    if choice in ("", AUTO):
        found = detect(url, team_id).provider
        return found.name if found else None
    if choice not in usable_providers(team_id):
        raise BadInput(f"{choice[:64]!r} is not a provider your team can use.",
                       "Choose one of the enabled providers, or let the portal detect it.")
    return choice


def _check_visibility(user, visibility):
    if visibility not in VISIBILITIES:
        raise BadInput("Visibility must be \"personal\" or \"team\".")
    if visibility == "team" and not user.is_admin:
        raise Forbidden("Only a team admin can share a server with the team.",
                        "Add it as a personal server, or ask an admin to share one.")
    return visibility


def _visible_to(user):
    clauses = [MCPServer.owner_id == user.id, MCPServer.visibility == "team"]
    if user.is_admin:
        clauses.append(MCPServer.team_id == user.team_id)
    return (MCPServer.team_id == user.team_id) & or_(*clauses)


def visible_servers(user):
    """The servers ``user`` may see, by name."""
    query = select(MCPServer).where(_visible_to(user)).order_by(MCPServer.name, MCPServer.id)
    return list(db.session.scalars(query))


def get_server(user, server_id):
    """The server ``server_id`` if ``user`` may see it; NotFound otherwise (also for bad ids)."""
    if isinstance(server_id, bool) or not isinstance(server_id, int) or not 0 < server_id <= MAX_ID:
        raise NotFound(*NOT_FOUND)
    server = db.session.scalar(select(MCPServer).where(MCPServer.id == server_id, _visible_to(user)))
    if server is None:
        raise NotFound(*NOT_FOUND)
    return server


def can_change(user, server):
    if server.team_id != user.team_id:
        return False
    return user.is_admin or (server.visibility == "personal" and server.owner_id == user.id)


def _require_change(user, server):
    if not can_change(user, server):
        raise Forbidden("Only a team admin can change a server shared with the team.",
                        "Ask an admin, or add a personal server.")


def create_server(user, *, name, url, provider=AUTO, visibility="personal"):
    """Add a server owned by ``user`` (audited ``server.created``); the caller commits."""
    name, url = check_name(name), check_url(url)
    visibility = _check_visibility(user, visibility)
    server = MCPServer(team_id=user.team_id, owner_id=user.id, name=name, url=url, visibility=visibility,
                       provider=_choose_provider(provider, url, user.team_id))
    db.session.add(server)
    db.session.flush()
    audit.record(audit.Action.SERVER_CREATED, actor=user, target=server, provider=server.provider,
                 details={"host": urlsplit(url).hostname, "visibility": visibility})
    return server


EDITABLE = ("name", "provider", "visibility")


def update_server(user, server, changes):
    """Apply ``changes`` (any of name, provider, visibility) and audit ``server.updated``.

    ``provider`` takes a usable provider name, ``"auto"`` (detect again) or None. The URL
    cannot change: tokens were granted for it. The caller commits.
    """
    _require_change(user, server)
    unknown = set(changes) - set(EDITABLE)
    if unknown:
        raise BadInput(unknown_fields_message(unknown), "A server's URL cannot change; add a new server instead."
                       if "url" in unknown else f"Send only {', '.join(EDITABLE)}.")
    new = {}
    if "name" in changes:
        new["name"] = check_name(changes["name"])
    if "visibility" in changes:
        new["visibility"] = _check_visibility(user, changes["visibility"])
    if "provider" in changes:
        new["provider"] = _choose_provider(changes["provider"], server.url, server.team_id)
    changed = sorted(key for key, value in new.items() if getattr(server, key) != value)
    for key in changed:
        setattr(server, key, new[key])
    if changed:
        db.session.flush()
        audit.record(audit.Action.SERVER_UPDATED, actor=user, target=server, provider=server.provider,
                     details={"changed": changed, **{key: new[key] for key in changed}})
    return server


def unknown_fields_message(unknown):
    names = ", ".join(sorted(str(name)[:40] for name in unknown)[:5])
    return f"Unknown or read-only fields: {names}."


def delete_server(user, server):
    """Remove the server (audited ``server.deleted``); connections are revoked by the receivers
    of ``server_deleting``, sent first in the same transaction. The caller commits."""
    _require_change(user, server)
    server_deleting.send(current_app._get_current_object(), server=server, actor=user)
    audit.record(audit.Action.SERVER_DELETED, actor=user, target=server, provider=server.provider,
                 details={"host": urlsplit(server.url).hostname, "visibility": server.visibility})
    db.session.delete(server)
    db.session.flush()
