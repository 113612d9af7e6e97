"""Gmail: send and read mail through a Gmail MCP server."""
from portal_google.common import GoogleProvider


class Gmail(GoogleProvider):
    name = "gmail"
    title = "Gmail"
    icon = "✉️"
    app_slug = "gmail"
    scopes = ("https://www.googleapis.com/auth/gmail.send", "https://www.googleapis.com/auth/gmail.readonly")
