"""Google Drive: files the MCP server creates or the user opens with it."""
from portal_google.common import GoogleProvider


class GoogleDrive(GoogleProvider):
    name = "google_drive"
    title = "Google Drive"
    icon = "▲"
    app_slug = "google_drive"
    scopes = ("https://www.googleapis.com/auth/drive.file",)
