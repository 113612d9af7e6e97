"""The contract test kit catches providers that break the contract."""
import pytest

from portal.providers.base import OAuthProvider
from portal.providers.testing import ProviderContract


class Sloppy(OAuthProvider):
    name = "sloppy"
    title = "Sloppy"
    authorize_url = "http://auth.sloppy.test/authorize"
    token_url = "https://auth.sloppy.test/token"
    scopes = ("read",)
    authorize_params = {"scope": "everything"}

    def detect(self, url):
        return "sloppy.test" in url  # a substring match: look-alike hosts pass


class Kit(ProviderContract):
    detect_yes = ["https://mcp.sloppy.test/mcp"]
    detect_no = ["https://mcp.sloppy.test.evil.example/mcp"]


@pytest.mark.parametrize("check", [
    "test_endpoints_are_https",
    "test_detect_rejects_other_urls",
    "test_authorize_params_carry_scopes",
    "test_registry_accepts_the_provider",
])
def test_contract_kit_fails_a_provider_that_breaks_the_contract(check):
    with pytest.raises(AssertionError):
        getattr(Kit(), check)(Sloppy())


def test_contract_kit_passes_checks_the_provider_honours():
    Kit().test_detect_claims_its_urls(Sloppy())
    Kit().test_parse_token_response_normalises_a_sample(Sloppy())
    Kit().test_settings_declare_client_credentials(Sloppy())
