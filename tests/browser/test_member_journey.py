"""A member's whole journey in Chromium, against the real local OAuth peer (consent page shown)
and the real MCP peer: add a server by URL, see its provider detected, connect, allow on the
provider's page, come back connected, test the connection, refresh now, disconnect.
"""
import re

import pytest

from tests.browser.test_sign_in import sign_in
from tests.peer_provider import CLIENT_ID, CLIENT_SECRET, PeerProvider, enable_peer, peer_config


class InboxProvider(PeerProvider):
    """The peer provider, recognising the MCP peer's own URL."""

    def __init__(self, base_url, mcp_url):
        super().__init__(base_url)
        self.mcp_url = mcp_url

    def detect(self, url):
        return url.rstrip("/") == self.mcp_url


@pytest.fixture
def app_config(app_config, oauth_peer, mcp_peer):
    app_config.update(peer_config(oauth_peer.base_url))
    app_config["EXTRA_PROVIDERS"] = [InboxProvider(oauth_peer.base_url, mcp_peer.url)]
    return app_config


@pytest.fixture
def journey(live_server, oauth_peer, console, make_user):
    """The portal registered at the peer with its live callback URL; a member of a team with
    the provider enabled; the peer asks for consent."""
    oauth_peer.register_client(CLIENT_ID, CLIENT_SECRET, [live_server.url + "/auth/oauth/callback"],
                               ["mail.read", "mail.send"])
    oauth_peer.auto_approve = False
    console.allow(re.escape(oauth_peer.base_url) + r"/favicon\.ico")  # the peer is not ours to style
    member = make_user("mia@a.test")
    enable_peer(member.team_id)
    return member


def status_row(page):
    return page.locator("#connection-status tbody tr").first


def test_member_connects_refreshes_and_disconnects_in_the_browser(page, journey, oauth_peer, mcp_peer, shoot):
    sign_in(page, journey.email)

    page.goto("/servers")
    page.get_by_label("Name").fill("Team inbox")
    page.get_by_label("URL").fill(mcp_peer.url)
    page.locator("#detection", has_text="Peer Mail detected").wait_for()
    shoot(page, "journey-1-detected")
    with page.expect_navigation():
        page.get_by_role("button", name="Add server").click()
    assert "Team inbox added with Peer Mail." in page.locator("#flash").inner_text()

    page.get_by_role("link", name="Settings").click()
    page.wait_for_url("**/settings")
    assert status_row(page).get_attribute("data-status") == "not_connected"
    shoot(page, "journey-2-not-connected")
    page.get_by_role("button", name="Connect").click()
    page.wait_for_url(f"{oauth_peer.base_url}/consent*")
    assert "Authorize" in page.locator("h1").inner_text()
    shoot(page, "journey-3-consent")
    page.get_by_role("button", name="Allow").click()
    page.wait_for_url("**/settings")
    assert "Connected Team inbox with Peer Mail." in page.locator("#flash").inner_text()
    row = status_row(page)
    assert row.get_attribute("data-status") == "connected"
    assert "Connected" in row.inner_text() and "user@example.test" in row.inner_text()
    shoot(page, "journey-4-connected")

    page.evaluate("() => { window.notReloaded = true }")
    page.get_by_role("button", name="Refresh now").click()
    page.locator("#connection-status", has_text="Token refreshed.").wait_for()
    assert status_row(page).get_attribute("data-status") == "connected"
    assert len(oauth_peer.calls_to("token", "refresh_token")) == 1
    shoot(page, "journey-5-refreshed")

    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Disconnect").click()
    page.locator("#connection-status", has_text="The provider confirmed the revocation").wait_for()
    assert status_row(page).get_attribute("data-status") == "not_connected"
    assert page.evaluate("() => window.notReloaded") is True
    assert len(oauth_peer.calls_to("revoke")) >= 1
    shoot(page, "journey-6-disconnected")


def test_member_tests_a_connected_server_against_the_mcp_peer(page, journey, oauth_peer, mcp_peer, shoot):
    sign_in(page, journey.email)
    page.goto("/servers")
    page.get_by_label("Name").fill("Inbox tools")
    page.get_by_label("URL").fill(mcp_peer.url)
    with page.expect_navigation():
        page.get_by_role("button", name="Add server").click()
    detail = page.url
    page.goto("/settings")
    page.get_by_role("button", name="Connect").click()
    page.get_by_role("button", name="Allow").click()
    page.wait_for_url("**/settings")

    page.goto(detail)
    page.get_by_role("button", name="Test connection").click()
    page.locator("#tools", has_text="echo").wait_for()
    assert "whoami" in page.locator("#tools").inner_text()
    assert any("Bearer" in value for value in mcp_peer.seen_authorization)
    shoot(page, "journey-tools")


def test_member_connects_without_javascript(browser, live_server, journey, oauth_peer, mcp_peer):
    context = browser.new_context(base_url=live_server.url, java_script_enabled=False)
    context.set_default_timeout(10_000)
    page = context.new_page()
    try:
        sign_in(page, journey.email)
        page.goto("/servers")
        page.get_by_label("Name").fill("Plain inbox")
        page.get_by_label("URL").fill(mcp_peer.url)
        page.get_by_role("button", name="Add server").click()
        page.goto("/settings")
        page.get_by_role("button", name="Connect").click()
        page.get_by_role("link", name="Continue to the provider").click()
        page.wait_for_url(f"{oauth_peer.base_url}/consent*")
        page.get_by_role("button", name="Allow").click()
        page.wait_for_url("**/settings")
        assert status_row(page).get_attribute("data-status") == "connected"
    finally:
        context.close()
