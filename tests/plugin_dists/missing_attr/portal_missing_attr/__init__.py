"""A plugin that forgets its token endpoint."""
from portal.providers.base import OAuthProvider


class NoTokenUrl(OAuthProvider):
    name = "no_token_url"
    title = "No token URL"
    authorize_url = "https://incomplete.example.com/authorize"

    def detect(self, url):
        return False
