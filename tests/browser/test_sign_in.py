"""Signing in and out in a real browser."""
from tests.conftest import PASSWORD


def sign_in(page, email, password=PASSWORD):
    """Fill and submit the sign-in form; returns once the answer has loaded."""
    page.goto("/login")
    page.get_by_label("E-mail").fill(email)
    page.get_by_label("Password").fill(password)
    with page.expect_navigation():
        page.get_by_role("button", name="Sign in").click()


def test_sign_in_lands_admin_on_portal_with_form(page, admin, shoot):
    sign_in(page, admin.email)
    page.wait_for_url("**/admin/**")
    assert page.locator(".who").inner_text().startswith(admin.email)
    shoot(page, "admin-home")


def test_sign_in_with_wrong_password_shows_message(page, console, member, shoot):
    console.allow(r"status of 401")
    sign_in(page, member.email, "not the password at all")
    assert page.get_by_role("status").or_(page.get_by_role("alert")).inner_text() == "Wrong e-mail or password."
    assert page.url.endswith("/login")
    assert page.get_by_label("E-mail").input_value() == member.email
    shoot(page, "login-wrong-password")


def test_sign_out_returns_to_login_and_locks_pages(page, member, shoot):
    sign_in(page, member.email)
    assert "/login" not in page.url
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url("**/login")
    assert "You are signed out." in page.locator("#flash").inner_text()
    shoot(page, "signed-out")
    page.goto("/account")
    assert "/login" in page.url
    assert page.get_by_role("heading", name="Sign in").is_visible()


def test_login_page_has_no_csp_violation_or_console_error(page, console, shoot):
    page.goto("/login")
    page.wait_for_function("() => window.htmx !== undefined && htmx.config.selfRequestsOnly === true")
    assert page.evaluate("() => [htmx.config.allowEval, htmx.config.allowScriptTags]") == [False, False]
    shoot(page, "login")
    assert console.errors == []


def test_console_capture_reports_csp_violation(page, console):
    """The capture the other tests rely on really sees the CSP: an inline style is refused."""
    page.goto("/login")
    page.evaluate("() => { const d = document.createElement('div');"
                  " d.innerHTML = '<p style=\"color: red\">x</p>'; document.body.append(d); }")
    page.wait_for_timeout(200)
    assert any("Content Security Policy" in text for text in console.errors), console.errors
    console.errors.clear()
