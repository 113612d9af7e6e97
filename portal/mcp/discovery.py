"""MCP-spec discovery: from an MCP server URL to its authorization server's endpoints.

The MCP authorization spec: an unauthenticated request gets 401 with
``WWW-Authenticate: Bearer resource_metadata="..."``; that RFC 9728 document (or the one at
the well-known URL) names the resource and its authorization servers; the first one's RFC 8414
(or OpenID Connect) metadata gives the endpoints. Nothing here follows redirects, and the
checks that stop a mix-up are strict: the metadata's ``resource`` must cover the MCP URL
(same origin, path prefix) and the authorization server's ``issuer`` must be the string the
resource named (a bare origin may differ by its trailing slash only: pydantic-based servers
add one). The ``issuer`` returned is the metadata's own, exactly, for RFC 9207 checks.
"""
import json
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx2
from mcp.client.auth.utils import (
    build_oauth_authorization_server_metadata_discovery_urls,
    build_protected_resource_metadata_discovery_urls,
    extract_field_from_www_auth,
)

from portal.mcp.errors import MCPServerError

DEFAULT_TIMEOUT = 10.0
MAX_DOCUMENT = 256 * 1024
PROBE = {"jsonrpc": "2.0", "id": 1, "method": "ping"}


class DiscoveryError(MCPServerError):
    code = "discovery_failed"


@dataclass(frozen=True)
class AuthorizationServerInfo:
    """What the OAuth core needs to connect a spec-compliant MCP server without a plugin."""

    resource: str  # RFC 8707 ``resource`` to request tokens for
    issuer: str  # exact, for the RFC 9207 ``iss`` check
    authorization_endpoint: str
    token_endpoint: str
    revocation_endpoint: str | None
    registration_endpoint: str | None  # RFC 7591 dynamic client registration
    userinfo_endpoint: str | None
    scopes: tuple  # to request: WWW-Authenticate scope, else resource's, else server's scopes_supported
    code_challenge_methods: tuple
    iss_parameter_supported: bool  # authorization_response_iss_parameter_supported
    resource_metadata_url: str
    metadata_url: str


def discover(url, *, timeout=DEFAULT_TIMEOUT):
    """Find the authorization server of the MCP server at ``url``; DiscoveryError if none."""
    with httpx2.Client(follow_redirects=False, timeout=timeout) as http:
        challenge = _probe(http, url)
        header_url = extract_field_from_www_auth(challenge, "resource_metadata") if challenge else None
        prm_url, prm = _first_document(http, build_protected_resource_metadata_discovery_urls(header_url, url),
                                       _is_resource_metadata)
        if prm is None:
            raise DiscoveryError("The MCP server publishes no protected resource metadata (RFC 9728).",
                                 "Choose a provider plugin for this server instead.")
        resource = _check_resource(prm, url)
        as_url = prm["authorization_servers"][0]
        candidates = build_oauth_authorization_server_metadata_discovery_urls(as_url, url)
        metadata_url, metadata = _first_document(http, candidates, _is_server_metadata)
    if metadata is None:
        raise DiscoveryError(f"The authorization server {as_url} publishes no usable metadata (RFC 8414).")
    _check_issuer(metadata["issuer"], as_url)
    header_scope = extract_field_from_www_auth(challenge, "scope") if challenge else None
    return _info(resource, metadata, _scopes(header_scope, prm, metadata), prm_url, metadata_url)


def _probe(http, url):
    """The 401 an unauthenticated MCP request gets, or None when it gets something else."""
    try:
        response = http.post(url, json=PROBE, headers={"Accept": "application/json, text/event-stream"})
    except httpx2.HTTPError as error:
        raise DiscoveryError(f"Could not reach the MCP server ({type(error).__name__}).",
                             "Check the server's URL.") from None
    response.close()
    return response if response.status_code == 401 else None


def _first_document(http, urls, valid):
    for candidate in urls:
        if urlsplit(candidate).scheme not in ("http", "https"):
            continue
        document = _fetch_json(http, candidate)
        if document is not None and valid(document):
            return candidate, document
    return None, None


def _fetch_json(http, url):
    try:
        with http.stream("GET", url, headers={"Accept": "application/json"}) as response:
            if response.status_code != 200:
                return None
            body = b""
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > MAX_DOCUMENT:
                    return None
        return json.loads(body)
    except (httpx2.HTTPError, ValueError):
        return None


def _is_url(value):
    return isinstance(value, str) and urlsplit(value).scheme in ("http", "https") and bool(urlsplit(value).hostname)


def _is_resource_metadata(document):
    if not isinstance(document, dict):
        return False
    servers = document.get("authorization_servers")
    return _is_url(document.get("resource")) and isinstance(servers, list) and bool(servers) and _is_url(servers[0])


def _is_server_metadata(document):
    return isinstance(document, dict) and all(
        _is_url(document.get(key)) for key in ("issuer", "authorization_endpoint", "token_endpoint"))


def _check_resource(prm, url):
    """RFC 9728 section 3.3: the metadata must be about the resource we asked for."""
    resource, asked = urlsplit(prm["resource"]), urlsplit(url)
    same_origin = (resource.scheme, resource.netloc.lower()) == (asked.scheme, asked.netloc.lower())
    prefix = resource.path.rstrip("/")
    if not same_origin or not (asked.path == prefix or asked.path.startswith(prefix + "/")):
        raise DiscoveryError("The MCP server's metadata names another resource; it cannot be trusted.",
                             "Check the server's URL.")
    return prm["resource"]


def _check_issuer(issuer, named):
    bare_origin = urlsplit(named).path in ("", "/")
    if issuer != named and not (bare_origin and issuer.rstrip("/") == named.rstrip("/")):
        raise DiscoveryError("The authorization server's metadata names another issuer; it cannot be trusted.")


def _scopes(header_scope, prm, metadata):
    for source in (header_scope.split() if header_scope else None, prm.get("scopes_supported"),
                   metadata.get("scopes_supported")):
        if isinstance(source, list) and all(isinstance(scope, str) for scope in source) and source:
            return tuple(source)
    return ()


def _optional_url(metadata, key):
    value = metadata.get(key)
    return value if _is_url(value) else None


def _info(resource, metadata, scopes, prm_url, metadata_url):
    methods = metadata.get("code_challenge_methods_supported")
    return AuthorizationServerInfo(
        resource=resource, issuer=metadata["issuer"],
        authorization_endpoint=metadata["authorization_endpoint"], token_endpoint=metadata["token_endpoint"],
        revocation_endpoint=_optional_url(metadata, "revocation_endpoint"),
        registration_endpoint=_optional_url(metadata, "registration_endpoint"),
        userinfo_endpoint=_optional_url(metadata, "userinfo_endpoint"), scopes=scopes,
        code_challenge_methods=tuple(m for m in methods if isinstance(m, str)) if isinstance(methods, list) else (),
        iss_parameter_supported=metadata.get("authorization_response_iss_parameter_supported") is True,
        resource_metadata_url=prm_url, metadata_url=metadata_url,
    )
