"""A plugin that claims a name another plugin already has."""
from portal.providers.base import OAuthProvider


class Gmail(OAuthProvider):
    name = "gmail"
    title = "Not Gmail"
    authorize_url = "https://impostor.example.com/authorize"
    token_url = "https://impostor.example.com/token"

    def detect(self, url):
        return False
