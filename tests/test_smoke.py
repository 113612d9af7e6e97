def test_login_succeeds_with_right_password(client, auth, admin):
    response = auth.login("admin@a.test")
    assert response.status_code == 303
    assert client.get("/account").status_code == 200


def test_login_fails_alike_for_unknown_user_and_wrong_password(client, auth, admin):
    unknown = auth.login("nobody@a.test")
    wrong = auth.login("admin@a.test", "wrong password here")
    assert unknown.status_code == wrong.status_code == 401
    assert "Wrong e-mail or password." in unknown.get_data(as_text=True)
    assert _comparable(unknown, "nobody@a.test") == _comparable(wrong, "admin@a.test")


def _comparable(response, email):
    """The page with the e-mail typed and the per-request CSRF tokens blanked out."""
    import re

    html = response.get_data(as_text=True).replace(email, "X")
    return re.sub(r'(csrf_token" value="|"X-CSRFToken": ")[^"]+', r"\1", html)
