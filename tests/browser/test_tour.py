"""Admin and member pages in Chromium: invite, join, API keys, audit; every page free of console
errors and CSP violations, HTMX swaps in place, error messages shown where the user looks."""
import re

from tests.browser.test_sign_in import sign_in


def nav_tour(page, shoot, prefix):
    """Click every link of the top navigation; each page loads with its heading."""
    labels = page.locator("header nav a").all_inner_texts()
    assert labels, "no navigation links"
    for label in labels:
        with page.expect_navigation():
            page.locator("header nav").get_by_role("link", name=label, exact=True).click()
        assert page.locator("main h1").first.is_visible(), label
        shoot(page, f"{prefix}-{label.lower().replace(' ', '-')}")
    return labels


def test_admin_invites_a_member_who_joins_and_creates_an_api_key(page, admin, shoot):
    sign_in(page, admin.email)
    assert set(nav_tour(page, shoot, "admin")) >= {"Plugins", "Members", "Servers", "Audit", "API keys"}

    page.goto("/admin/members")
    page.evaluate("() => { window.notReloaded = true }")
    page.get_by_label("E-mail").fill("newcomer@a.test")
    page.get_by_role("button", name="Create invitation link").click()
    link = page.get_by_label("Invitation link").input_value()
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/invite/[A-Za-z0-9_-]{43}", link), link
    assert page.locator("#invites", has_text="newcomer@a.test").is_visible()
    assert page.evaluate("() => window.notReloaded") is True
    shoot(page, "admin-invite-created")
    with page.expect_navigation():
        page.get_by_role("button", name="Sign out").click()

    page.goto(link)
    assert "Join" in page.locator("h1").inner_text()
    assert page.locator("input[name=username]").is_hidden()  # only for password managers
    page.get_by_label("Your name").fill("Nina Newcomer")
    page.get_by_label("Password (at least").fill("a long new password 7")
    page.get_by_label("Password again").fill("a long new password 7")
    shoot(page, "member-join")
    with page.expect_navigation():
        page.get_by_role("button", name="Join and sign in").click()
    assert "Welcome to" in page.locator("#flash").inner_text()
    assert page.locator(".who").inner_text().startswith("newcomer@a.test")

    page.goto("/account")
    assert page.locator("input[name=username]").is_hidden()
    page.goto("/account/api-keys")
    page.evaluate("() => { window.notReloaded = true }")
    page.get_by_label("Name (which host uses it)").fill("laptop agent")
    page.get_by_role("button", name="Create key").click()
    key = page.get_by_label("Key", exact=True).input_value()
    assert re.fullmatch(r"mcpp_[0-9a-f]{8}_[0-9a-f]{64}", key)
    shoot(page, "member-api-key-created")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Revoke").click()
    page.locator("#api-keys", has_text="is revoked").wait_for()
    assert page.evaluate("() => window.notReloaded") is True
    page.goto("/account/api-keys")
    assert key not in page.content()
    nav_tour(page, shoot, "member")


def test_htmx_error_answer_is_shown_to_the_user(page, console, admin, shoot):
    """A refused HTMX action (an invitation for an existing account: 409) shows its message."""
    console.allow(r"status of 409")
    console.allow(r"Response Status Error Code 409")
    sign_in(page, admin.email)
    page.goto("/admin/members")
    page.get_by_label("E-mail").fill(admin.email)
    page.get_by_role("button", name="Create invitation link").click()
    page.locator("#flash", has_text="already exists").wait_for(timeout=5000)
    shoot(page, "admin-invite-conflict")


def test_htmx_action_after_sessions_ended_elsewhere_leads_to_sign_in(page, browser, live_server, console, member):
    """"Log out everywhere" on another device: the next HTMX click on this one goes to sign in."""
    console.allow(r"status of 401")
    console.allow(r"Response Status Error Code 401")
    sign_in(page, member.email)
    page.goto("/account/api-keys")
    other = browser.new_context(base_url=live_server.url)
    try:
        elsewhere = other.new_page()
        sign_in(elsewhere, member.email)
        elsewhere.goto("/account")
        with elsewhere.expect_navigation():
            elsewhere.get_by_role("button", name="Log out everywhere").click()
    finally:
        other.close()
    page.get_by_label("Name (which host uses it)").fill("too late")
    with page.expect_navigation(url="**/login*"):
        page.get_by_role("button", name="Create key").click()
    assert page.get_by_role("heading", name="Sign in").is_visible()
