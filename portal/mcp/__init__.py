"""MCP servers seen from the portal: tool calls with the user's token, and MCP-spec discovery.

``client`` talks to a server (streamable HTTP, the official ``mcp`` SDK) with a bearer token
from a token provider (``tokens``); ``discovery`` finds a server's authorization server from
its RFC 9728 metadata. Nothing here knows about Flask requests.
"""
