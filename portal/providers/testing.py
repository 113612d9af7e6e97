"""The contract test kit every provider plugin runs.

Subclass ``ProviderContract`` in a test module whose name starts with ``test_``, name the
class ``Test...``, supply a ``provider`` fixture and the URL lists, and pytest runs every check
below against your provider::

    class TestGmail(ProviderContract):
        detect_yes = ["https://mcp.pipedream.net/abc/gmail"]
        detect_no = ["https://mcp.pipedream.net/abc/gmailx"]

        @pytest.fixture
        def provider(self):
            return Gmail()
"""
from urllib.parse import parse_qs, urlsplit

import pytest

from portal.providers.base import CONTRACT_VERSION, NAME_PATTERN, OAuthProvider, SettingSpec
from portal.providers.registry import ProviderRegistry

SAMPLE_TOKEN_RESPONSE = {
    "access_token": "sample-access", "refresh_token": "sample-refresh", "expires_in": 3599,
    "scope": "a b", "token_type": "Bearer",
}


class ProviderContract:
    #: MCP server URLs the provider must claim.
    detect_yes: list = []
    #: URLs it must not claim (other hosts, look-alike paths, plain http).
    detect_no: list = []
    #: A token response in the provider's own shape, if it differs from the standard one.
    sample_token_response: dict = SAMPLE_TOKEN_RESPONSE

    @pytest.fixture
    def provider(self):
        """Override in the plugin's test class: ``return MyProvider()``."""
        pytest.fail(f"{type(self).__name__} must define a `provider` fixture returning the plugin's provider")

    def test_provider_is_an_oauth_provider(self, provider):
        assert isinstance(provider, OAuthProvider)

    def test_contract_version_matches_the_host(self, provider):
        assert provider.contract_version == CONTRACT_VERSION

    def test_name_is_a_stable_id(self, provider):
        assert NAME_PATTERN.match(provider.name), provider.name
        assert provider.title

    def test_endpoints_are_https(self, provider):
        for attr in ("authorize_url", "token_url", "revoke_url", "userinfo_url", "issuer"):
            url = getattr(provider, attr)
            assert url is None or urlsplit(url).scheme == "https", f"{attr} = {url!r}"

    def test_detect_claims_its_urls(self, provider):
        assert self.detect_yes, "list at least one URL in detect_yes"
        for url in self.detect_yes:
            assert provider.detect(url) is True, url

    def test_detect_rejects_other_urls(self, provider):
        assert self.detect_no, "list look-alike URLs in detect_no"
        for url in [*self.detect_no, "", "not a url", "https://[::1"]:
            assert provider.detect(url) is False, url

    def test_settings_declare_client_credentials(self, provider):
        specs = provider.setting_specs()
        assert all(isinstance(spec, SettingSpec) for spec in specs)
        by_key = {spec.key: spec for spec in specs}
        assert {"client_id", "client_secret"} <= set(by_key)
        assert by_key["client_secret"].secret and not by_key["client_id"].secret
        assert all(spec.env and spec.env.isupper() for spec in specs)

    def test_authorize_params_carry_scopes(self, provider):
        params = provider.build_authorize_params()
        assert params.get("scope", "").split() == list(provider.scopes)
        assert not {"client_id", "redirect_uri", "state", "code_challenge"} & set(params)

    def test_parse_token_response_normalises_a_sample(self, provider):
        parsed = provider.parse_token_response(dict(self.sample_token_response))
        assert parsed["access_token"]
        assert set(parsed) >= {"access_token", "refresh_token", "expires_in", "scope", "token_type"}

    def test_revocation_request_names_the_token(self, provider):
        assert "sample-access" in provider.revocation_request("sample-access", "access_token").values()

    def test_registry_accepts_the_provider(self, provider):
        host = ProviderRegistry()
        host.add(type(provider), entry_point=f"test:{type(provider).__name__}")
        assert host.failed == [], host.failed[0].failure if host.failed else None
        assert isinstance(host.get(provider.name), type(provider))

    def test_authorization_url_is_built_from_the_declaration(self, provider):
        from portal.providers.urls import authorization_url

        url = authorization_url(provider, "client-1", "https://portal.example/cb", "state-1", "v" * 43)
        parts = urlsplit(url)
        assert f"{parts.scheme}://{parts.netloc}{parts.path}" == provider.authorize_url.split("?")[0]
        query = parse_qs(parts.query)
        assert query["client_id"] == ["client-1"] and query["code_challenge_method"] == ["S256"]
        for key, value in provider.authorize_params.items():
            assert query[key] == [str(value)]

