import pytest

from portal.providers.testing import ProviderContract
from portal_example_provider import ExampleProvider


class TestExampleProvider(ProviderContract):
    detect_yes = ["https://mcp.example.com/mcp", "https://mcp.example.com/sse"]
    detect_no = [
        "http://mcp.example.com/mcp",
        "https://mcp.example.com.evil.test/mcp",
        "https://other.example.com/mcp",
    ]

    @pytest.fixture
    def provider(self):
        return ExampleProvider()


def test_account_label_prefers_the_username():
    assert ExampleProvider().account_label({}, {"username": "ada", "email": "a@x.test"}) == "ada"
