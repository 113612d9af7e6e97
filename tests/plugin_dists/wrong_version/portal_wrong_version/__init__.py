"""A plugin written for a contract the portal does not provide."""
from portal.providers.base import OAuthProvider


class FutureProvider(OAuthProvider):
    contract_version = 99
    name = "future"
    title = "Future"
    authorize_url = "https://future.example.com/authorize"
    token_url = "https://future.example.com/token"

    def detect(self, url):
        return False
