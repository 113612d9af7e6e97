"""The portal's MCP calls for a user and one of their servers (views and the API use these).

Each call ends the request's database transaction before going out: an MCP server may take
seconds, and no lock (SQLite state-changing requests begin IMMEDIATE) may be held meanwhile.
"""
from flask import current_app

from portal.errors import BadInput
from portal.extensions import db
from portal.mcp import client
from portal.mcp.tokens import token_provider_for

MAX_TOOL_NAME = 128


def _prepare(user, server):
    url, tokens = server.url, token_provider_for(user, server)
    db.session.commit()
    return url, tokens, float(current_app.config.get("MCP_TIMEOUT") or client.DEFAULT_TIMEOUT)


def server_tools(user, server):
    """The tools ``server`` offers, asked with ``user``'s token."""
    url, tokens, timeout = _prepare(user, server)
    return client.list_tools(url, tokens, timeout=timeout)


def check_tool_name(name):
    if not isinstance(name, str) or not 0 < len(name) <= MAX_TOOL_NAME or not name.isprintable() or " " in name:
        raise BadInput(f"A tool name is 1 to {MAX_TOOL_NAME} printable characters without spaces.",
                       "List the server's tools to see their names.")
    return name


def call_server_tool(user, server, name, arguments):
    """Call tool ``name`` of ``server`` with ``arguments`` (a dict) and ``user``'s token."""
    check_tool_name(name)
    if not isinstance(arguments, dict):
        raise BadInput("Tool arguments must be a JSON object.", 'Send e.g. {"text": "hello"}.')
    url, tokens, timeout = _prepare(user, server)
    return client.call_tool(url, name, arguments, tokens, timeout=timeout)
