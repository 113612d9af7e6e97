"""Gmail and Google Drive honour the provider contract and declare Google's real endpoints."""
from urllib.parse import parse_qs, urlsplit

import pytest
from portal_google.drive import GoogleDrive
from portal_google.gmail import Gmail

from portal.providers.testing import ProviderContract
from portal.providers.urls import authorization_url

SERVER_ID = "3f2b9c1e-7d4a-4e8b-9a61-0c5d2e7f8a90"
LOOK_ALIKES = [
    f"https://mcp.pipedream.net/{SERVER_ID}/gmailx",
    f"https://mcp.pipedream.net/{SERVER_ID}/gmail/extra",
    f"https://mcp.pipedream.net.evil.test/{SERVER_ID}/gmail",
    f"https://evil.test/{SERVER_ID}/gmail",
    f"http://evil.test/{SERVER_ID}/google_drive",
    f"http://mcp.pipedream.net/{SERVER_ID}/gmail",
    "https://mcp.pipedream.net/gmail",
    f"https://mcp.pipedream.net/{SERVER_ID}/slack",
]


class TestGmail(ProviderContract):
    detect_yes = [f"https://mcp.pipedream.net/{SERVER_ID}/gmail", f"https://MCP.pipedream.net/{SERVER_ID}/gmail/"]
    detect_no = [*LOOK_ALIKES, f"https://mcp.pipedream.net/{SERVER_ID}/google_drive"]

    @pytest.fixture
    def provider(self):
        return Gmail()


class TestGoogleDrive(ProviderContract):
    detect_yes = [f"https://mcp.pipedream.net/{SERVER_ID}/google_drive"]
    detect_no = [*LOOK_ALIKES, f"https://mcp.pipedream.net/{SERVER_ID}/gmail"]

    @pytest.fixture
    def provider(self):
        return GoogleDrive()


@pytest.mark.parametrize("provider, scopes", [
    (Gmail(), ["https://www.googleapis.com/auth/gmail.send", "https://www.googleapis.com/auth/gmail.readonly"]),
    (GoogleDrive(), ["https://www.googleapis.com/auth/drive.file"]),
])
def test_authorize_url_carries_google_endpoint_scopes_and_offline_params(provider, scopes):
    url = authorization_url(provider, "client-1.apps.googleusercontent.com", "https://portal.example/auth/oauth/callback",
                            "state-123", "v" * 64)
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == "https://accounts.google.com/o/oauth2/v2/auth"
    assert query["scope"] == [" ".join(scopes)]
    assert query["access_type"] == ["offline"] and query["prompt"] == ["consent"]
    assert query["include_granted_scopes"] == ["true"]
    assert query["response_type"] == ["code"] and query["code_challenge_method"] == ["S256"]
    assert query["redirect_uri"] == ["https://portal.example/auth/oauth/callback"]


def test_google_providers_declare_google_endpoints_and_shared_credentials():
    for provider in (Gmail(), GoogleDrive()):
        assert provider.token_url == "https://oauth2.googleapis.com/token"
        assert provider.revoke_url == "https://oauth2.googleapis.com/revoke"
        assert provider.userinfo_url == "https://openidconnect.googleapis.com/v1/userinfo"
        assert provider.issuer == "https://accounts.google.com"
        assert [spec.env for spec in provider.setting_specs()] == ["GOOGLE_CLIENT_ID", "GOOGLE_CLIENT_SECRET"]


def test_account_label_is_the_google_email():
    assert Gmail().account_label({}, {"sub": "1", "email": "ada@example.com"}) == "ada@example.com"
