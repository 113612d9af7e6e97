"""Bad input to the account routes: a 4xx with a readable message, never a 500."""
import threading

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from portal.extensions import db
from portal.models import Invite, User
from tests.conftest import Auth

TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=300)
FIELDS = st.dictionaries(st.sampled_from(["email", "role", "name", "password", "confirm_password",
                                          "current_password", "new_password", "remember"]), TEXT, max_size=6)
FUZZ = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
OVERSIZED = "x" * (1024 * 1024 + 1)


def routes(member_id):
    return ["/login", "/account/password", "/account/api-keys", "/admin/members/invites",
            f"/admin/members/{member_id}/role", f"/admin/members/{member_id}/disable", "/invite/" + "A" * 43]


@FUZZ
@given(fields=FIELDS, route=st.integers(min_value=0, max_value=6))
def test_account_forms_answer_4xx_or_success_for_any_fields(client, auth, admin, member, fields, route):
    if not client.get_cookie("portal_session") or client.get("/account").status_code != 200:
        auth.login("admin@a.test")
    path = routes(member.id)[route]
    response = client.submit(path, fields, token_from="/account")
    assert response.status_code < 500, (path, fields, response.get_data(as_text=True)[:300])
    if response.status_code >= 400:
        assert response.status_code in (400, 401, 404, 409, 413)
        body = response.get_data(as_text=True)
        assert "Traceback" not in body and ('class="flash' in body or "error" in body)


@pytest.mark.parametrize("path", ["/login", "/account/password", "/account/api-keys", "/admin/members/invites",
                                  "/invite/" + "A" * 43, "/account/logout-everywhere"])
def test_oversized_body_is_refused_readably(client, auth, admin, path):
    auth.login("admin@a.test")
    token = client.csrf_token("/account")
    response = client.post(path, data={"csrf_token": token, "name": OVERSIZED})
    assert response.status_code == 413 and "The request was too large." in response.get_data(as_text=True)
    json_response = client.post("/api/api-keys", data=OVERSIZED, content_type="application/json",
                                headers={"X-CSRFToken": token})
    assert json_response.status_code in (405, 413)


def test_accept_invite_concurrently_creates_one_user(app, client, auth, admin):
    auth.login("admin@a.test")
    page = client.submit("/admin/members/invites", {"email": "race@a.test", "role": "member"},
                         token_from="/admin/members").get_data(as_text=True)
    token = page.split("/invite/", 1)[1][:43]
    clients = [app.test_client() for _ in range(4)]
    forms = [(c, c.csrf_token("/login")) for c in clients]
    barrier, statuses = threading.Barrier(len(forms)), []

    def accept(c, csrf):
        barrier.wait()
        response = c.post(f"/invite/{token}", data={"csrf_token": csrf, "name": "Racer", "password": "racing passphrase",
                                                     "confirm_password": "racing passphrase"})
        statuses.append(response.status_code)

    threads = [threading.Thread(target=accept, args=form) for form in forms]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(statuses) == [303, 404, 404, 404]
    db.session.rollback()
    assert len(db.session.scalars(select(User).where(User.email == "race@a.test")).all()) == 1
    assert db.session.scalars(select(Invite)).one().accepted_at is not None
    assert Auth(app.test_client()).login("race@a.test", "racing passphrase").status_code == 303
