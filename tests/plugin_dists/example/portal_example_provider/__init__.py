"""A small, complete provider plugin: the one docs/plugins.md walks through."""
from portal.providers.base import OAuthProvider, host_matches


class ExampleProvider(OAuthProvider):
    name = "example"
    title = "Example"
    icon = "EX"
    authorize_url = "https://auth.example.com/oauth/authorize"
    token_url = "https://auth.example.com/oauth/token"
    revoke_url = "https://auth.example.com/oauth/revoke"
    scopes = ("read", "write")

    def detect(self, url):
        return host_matches(url, "mcp.example.com") and url.startswith("https://")
