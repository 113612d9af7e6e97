"""The Plugins page in a real browser: HTMX swaps one provider's row, no page reload."""
from tests.browser.test_sign_in import sign_in

SECRET = "GOCSPX-browser-secret-9a8b7c6d5e4f"


def test_admin_saves_credentials_and_toggles_gmail_in_place(page, admin, shoot):
    sign_in(page, admin.email)
    page.goto("/admin/plugins")
    page.evaluate("() => { window.notReloaded = true }")
    row = page.locator("#plugin-gmail")
    assert "not configured" in row.inner_text()
    row.get_by_label("Client ID").fill("browser-id.apps.googleusercontent.com")
    row.get_by_label("Client secret").fill(SECRET)
    row.get_by_role("button", name="Save credentials").click()
    page.locator("#plugin-gmail", has_text="The credentials for Gmail are saved.").wait_for()
    assert "not configured" not in row.inner_text()
    assert row.get_by_label("Client secret").input_value() == ""
    row.get_by_role("button", name="Enable").click()
    page.locator("#plugin-gmail", has_text="Gmail is enabled.").wait_for()
    page.once("dialog", lambda dialog: dialog.accept())
    row.get_by_role("button", name="Disable").click()
    page.locator("#plugin-gmail", has_text="Gmail is disabled.").wait_for()
    assert page.evaluate("() => window.notReloaded") is True
    assert SECRET not in page.content()
    shoot(page, "admin-plugins")
