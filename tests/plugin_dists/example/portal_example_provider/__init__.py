"""A small, complete provider plugin: the one docs/plugins.md walks through."""
from portal.providers.base import OAuthProvider, host_matches


class ExampleProvider(OAuthProvider):
    name = "example"
    title = "Example"
    icon = "EX"
    authorize_url = "https://auth.example.com/oauth/authorize"
    token_url = "https://auth.example.com/oauth/token"
    revoke_url = "https://auth.example.com/oauth/revoke"
    userinfo_url = "https://api.example.com/me"
    scopes = ("read", "write")

    def detect(self, url):
        return url.startswith("https://") and host_matches(url, "mcp.example.com")

    def account_label(self, token, userinfo):
        return (userinfo or {}).get("username") or super().account_label(token, userinfo)
