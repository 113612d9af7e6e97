"""Calls to an MCP server with the user's bearer token (streamable HTTP, the ``mcp`` SDK).

SECURITY 7: the token goes only in the ``Authorization`` header and only to the origin of
the server it belongs to; the HTTP client follows no redirect at all (the SDK would follow a
same-origin one; ``BearerAuth`` drops the prepared follow-up request), so a server that
redirects gets an error, and no other origin ever sees the token. A 401 surfaces from the SDK as a generic error, so it
is caught at the HTTP layer by ``BearerAuth``: one refresh through the token provider, one
retry. The functions are synchronous (the portal is a sync Flask app): each call runs its
own event loop with a deadline.
"""
import functools
import logging

import anyio
import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from pydantic import ValidationError

from portal.mcp.errors import ConnectionRequired, MCPServerError, MCPTimeout

log = logging.getLogger("portal.mcp")
DEFAULT_TIMEOUT = 30.0
MAX_TOOL_PAGES = 20
DEFAULT_PORTS = {"http": 80, "https": 443}


def origin(url):
    """(scheme, host, port) of ``url``, default ports filled in."""
    url = httpx2.URL(str(url))
    return url.scheme, url.host, url.port or DEFAULT_PORTS.get(url.scheme)


class BearerAuth(httpx2.Auth):
    """Adds the token to requests for the server's origin; on 401 refreshes once and retries."""

    def __init__(self, url, tokens, token):
        self.origin = origin(url)
        self.tokens = tokens
        self.token = token
        self.refreshed = False
        self.rejected = False  # the server refused every token we had
        self.failure = None  # what the token provider raised while refreshing
        self.redirected_to = None  # where the server tried to send us (not followed)

    async def async_auth_flow(self, request):
        if origin(request.url) != self.origin:
            self._refuse_redirect((yield request))  # another origin never sees the token
            return
        await request.aread()  # the retry after a 401 resends the body
        sent = self.token
        request.headers["Authorization"] = f"Bearer {sent}"
        response = yield request
        self._refuse_redirect(response)
        if response.status_code != 401:
            return
        fresh = self._fresh_token(sent)
        if fresh is None:
            self.rejected = True
            return
        request.headers["Authorization"] = f"Bearer {fresh}"
        response = yield request
        self._refuse_redirect(response)
        self.rejected = response.status_code == 401

    def _refuse_redirect(self, response):
        """Drop the follow-up request httpx2 prepared, so the SDK follows no redirect either."""
        if response.next_request is not None:
            self.redirected_to = str(response.next_request.url.copy_with(query=None, fragment=None))
            response.next_request = None

    def _fresh_token(self, rejected):
        # The provider's calls are synchronous and short (a database read, at most one refresh
        # under the vault's lock), so no other request of this session interleaves here.
        if self.token != rejected:
            return self.token  # another request of this session already refreshed
        if self.refreshed:
            return None
        self.refreshed = True
        try:
            fresh = self.tokens.refresh(rejected)
        except Exception as error:  # re-raised by _translate once the SDK gives up
            self.failure = error
            return None
        if fresh:
            self.token = fresh
        return fresh or None


def list_tools(url, tokens, *, timeout=DEFAULT_TIMEOUT):
    """The server's tools as MCP JSON dicts (``name``, ``description``, ``inputSchema``, ...)."""
    return _run(url, tokens, timeout, _list_tools)


def call_tool(url, name, arguments, tokens, *, timeout=DEFAULT_TIMEOUT):
    """Call tool ``name``; the MCP ``CallToolResult`` as JSON (``content``, ``isError``, ...).

    A tool that fails reports ``isError: true`` in its result; errors of the server or of the
    protocol raise ``MCPServerError`` (502), ``MCPTimeout`` (504), or ``ConnectionRequired``
    (409) when the server refuses the token even after a refresh.
    """
    return _run(url, tokens, timeout, functools.partial(_call_tool, name=name, arguments=arguments))


def _dump(model):
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


async def _list_tools(client):
    tools, cursor = [], None
    for _ in range(MAX_TOOL_PAGES):
        page = await client.list_tools(cursor=cursor)
        tools += [_dump(tool) for tool in page.tools]
        cursor = page.next_cursor
        if not cursor:
            break
    return tools


async def _call_tool(client, name, arguments):
    return _dump(await client.call_tool(name, arguments))


async def _session(url, auth, timeout, operation):
    with anyio.fail_after(timeout):
        http = httpx2.AsyncClient(auth=auth, follow_redirects=False, timeout=httpx2.Timeout(timeout))
        async with http, Client(streamable_http_client(url, http_client=http), read_timeout_seconds=timeout) as client:
            return await operation(client)


def _run(url, tokens, timeout, operation):
    auth = BearerAuth(url, tokens, tokens.get())
    try:
        return anyio.run(_session, url, auth, timeout, operation)
    except Exception as error:
        raise _translate(error, auth, url) from None


def _leaves(error):
    if isinstance(error, BaseExceptionGroup):
        return [leaf for inner in error.exceptions for leaf in _leaves(inner)]
    return [error]


def _translate(error, auth, url):
    """The portal error to raise for whatever the SDK or the transport raised."""
    if auth.failure is not None:
        return auth.failure
    if auth.rejected:
        return ConnectionRequired("OAuth tokens expired",
                                  "The MCP server refused the token even after a refresh; reconnect the server.")
    host = httpx2.URL(url).host
    if auth.redirected_to:
        return MCPServerError(f"The MCP server at {host} redirected to {auth.redirected_to}; "
                              "the portal follows no redirects.", "Use that URL if it is the intended server.")
    for leaf in _leaves(error):
        if isinstance(leaf, (TimeoutError, httpx2.TimeoutException)):
            return MCPTimeout(f"The MCP server at {host} did not answer in time.", "Try again later.")
        if isinstance(leaf, httpx2.TransportError):
            return MCPServerError(f"Could not reach the MCP server at {host} ({type(leaf).__name__}).",
                                  "Check the server's URL, or try again later.")
        if isinstance(leaf, MCPError):
            return MCPServerError(f"The MCP server at {host} answered with an error: {leaf.error.message}"[:500])
        if isinstance(leaf, ValidationError):
            return MCPServerError(f"The MCP server at {host} sent an answer that is not valid MCP.")
    log.warning("MCP call to %s failed unexpectedly", host, exc_info=error)
    return MCPServerError(f"The call to the MCP server at {host} failed ({type(error).__name__}).")
