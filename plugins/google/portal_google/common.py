"""What every Google provider shares: endpoints, credentials, and the MCP host they serve."""
from urllib.parse import urlsplit

from portal.providers.base import OAuthProvider, SettingSpec

PIPEDREAM_HOST = "mcp.pipedream.net"


class GoogleProvider(OAuthProvider):
    """Google's OAuth 2.0 endpoints; subclasses set name, title, scopes and ``app_slug``."""

    authorize_url = "https://accounts.google.com/o/oauth2/v2/auth"
    token_url = "https://oauth2.googleapis.com/token"
    revoke_url = "https://oauth2.googleapis.com/revoke"
    userinfo_url = "https://openidconnect.googleapis.com/v1/userinfo"
    issuer = "https://accounts.google.com"
    # A refresh token only comes with offline access, and again on re-consent only with prompt=consent.
    authorize_params = {"access_type": "offline", "prompt": "consent", "include_granted_scopes": "true"}
    token_endpoint_auth_method = "client_secret_post"
    settings = (
        SettingSpec("client_id", "GOOGLE_CLIENT_ID", "Client ID"),
        SettingSpec("client_secret", "GOOGLE_CLIENT_SECRET", "Client secret", secret=True),
    )
    #: The last path segment of the app's MCP server URL at Pipedream.
    app_slug = ""

    def detect(self, url):
        """``https://mcp.pipedream.net/<id>/<app_slug>``: https, that host, that last segment."""
        try:
            parts = urlsplit(str(url))
            host = parts.hostname
        except ValueError:
            return False
        segments = [segment for segment in parts.path.split("/") if segment]
        return (parts.scheme == "https" and host == PIPEDREAM_HOST and len(segments) >= 2
                and segments[-1] == self.app_slug)
