"""The JSON API under /api: MCP servers and tool calls for agent hosts (docs/api.md).

Every answer is JSON; errors are ``{"error", "message"[, "next_step"]}`` with a 4xx (or 502/504
when the MCP server fails). Cookie sessions must send the CSRF token (``X-CSRFToken``) on
POST, PATCH and DELETE. Every view carries ``ratelimit.limit_api`` (tool calls also
``limit_tools``) and ``merge_slashes=False`` (so ``//`` in a path is a JSON 404, not werkzeug's
HTML 308 redirect). Other helpers add their routes to this blueprint the same way.
"""
from flask import Blueprint, jsonify, request, url_for
from flask_login import current_user

from portal import servers
from portal.errors import BadInput
from portal.extensions import db, login_manager
from portal.mcp import calls
from portal.providers.registry import registry
from portal.ratelimit import limit_api, limit_tools

bp = Blueprint("api", __name__, url_prefix="/api")
CREATE_FIELDS = ("name", "url", "provider", "visibility")


@bp.before_request
def require_user():
    """401 JSON for anonymous callers (the portal's one unauthorized handler)."""
    if not current_user.is_authenticated:
        return login_manager.unauthorized()
    return None


def json_object(empty=None):
    """The request's JSON object; ``empty`` (if given) stands in for an empty body."""
    if empty is not None and not request.get_data(cache=True):
        return empty
    try:
        data = request.get_json(silent=True)
    except RecursionError:  # nesting deeper than the JSON parser goes
        data = None
    if not isinstance(data, dict):
        raise BadInput("Send a JSON object.", "Use Content-Type: application/json and a body like {\"name\": ...}.")
    return data


def server_json(server):
    provider = registry().get(server.provider) if server.provider else None
    return {
        "id": server.id, "name": server.name, "url": server.url, "provider": server.provider,
        "provider_title": provider.title if provider else None, "visibility": server.visibility,
        "owner": {"id": server.owner_id, "email": server.owner.email},
        "created_at": server.created_at.isoformat().replace("+00:00", "Z"),
        "can_change": servers.can_change(current_user, server),
    }


@bp.get("/servers", merge_slashes=False)
@limit_api
def list_servers():
    return jsonify({"servers": [server_json(server) for server in servers.visible_servers(current_user)]})


@bp.post("/servers", merge_slashes=False)
@limit_api
def create_server():
    data = json_object()
    unknown = set(data) - set(CREATE_FIELDS)
    if unknown:
        raise BadInput(servers.unknown_fields_message(unknown), f"Send only {', '.join(CREATE_FIELDS)}.")
    server = servers.create_server(current_user, name=data.get("name"), url=data.get("url"),
                                   provider=data.get("provider", servers.AUTO),
                                   visibility=data.get("visibility", "personal"))
    db.session.commit()
    return jsonify(server_json(server)), 201, {"Location": url_for("api.get_server", server_id=server.id)}


@bp.get("/servers/<int:server_id>", merge_slashes=False)
@limit_api
def get_server(server_id):
    return jsonify(server_json(servers.get_server(current_user, server_id)))


@bp.patch("/servers/<int:server_id>", merge_slashes=False)
@limit_api
def update_server(server_id):
    server = servers.get_server(current_user, server_id)
    servers.update_server(current_user, server, json_object())
    db.session.commit()
    return jsonify(server_json(server))


@bp.delete("/servers/<int:server_id>", merge_slashes=False)
@limit_api
def delete_server(server_id):
    servers.delete_server(current_user, servers.get_server(current_user, server_id))
    db.session.commit()
    return jsonify({"id": server_id, "deleted": True})


@bp.get("/servers/<int:server_id>/tools", merge_slashes=False)
@limit_api
def list_tools(server_id):
    server = servers.get_server(current_user, server_id)
    return jsonify({"server_id": server_id, "tools": calls.server_tools(current_user, server)})


@bp.post("/servers/<int:server_id>/tools/<name>", merge_slashes=False)
@limit_api
@limit_tools
def call_tool(server_id, name):
    """Call a tool with the JSON body as its arguments; the portal adds the bearer token."""
    server = servers.get_server(current_user, server_id)
    calls.check_tool_name(name)
    return jsonify(calls.call_server_tool(current_user, server, name, json_object(empty={})))
