"""The admin Plugins page: admins see installed providers, enable them and enter credentials."""
import json
import re

import pytest

from portal.extensions import db
from portal.models import AuditEvent, ProviderSetting
from portal.providers import settings

SECRET = "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8796a5b4"
CLIENT_ID = "1234-abc.apps.googleusercontent.com"


@pytest.fixture
def signed_in_admin(client, auth, admin):
    assert auth.login("admin@a.test").status_code == 303
    return admin


def save_credentials(client, name="gmail", client_id=CLIENT_ID, client_secret=SECRET, **kwargs):
    return client.submit(f"/admin/plugins/{name}/credentials", {"client_id": client_id, "client_secret": client_secret},
                         token_from="/admin/plugins", **kwargs)


def set_enabled(client, name="gmail", enabled="1", **kwargs):
    return client.submit(f"/admin/plugins/{name}/enabled", {"enabled": enabled}, token_from="/admin/plugins", **kwargs)


def plugins_json(runner, *args):
    result = runner.invoke(args=["portal", "plugins", "--json", *args])
    assert result.exit_code == 0, result.output
    return {entry["name"]: entry for entry in json.loads(result.output)["plugins"]}


def test_plugins_page_lists_google_providers_installed_not_configured(client, signed_in_admin):
    html = client.get("/admin/plugins").get_data(as_text=True)
    assert "Gmail" in html and "Google Drive" in html and "mcp-portal-google" in html
    assert html.count("not configured") >= 2
    assert 'id="plugin-gmail"' in html and 'id="plugin-google_drive"' in html


def test_admin_enables_gmail_with_credentials_and_cli_agrees(client, runner, signed_in_admin):
    assert save_credentials(client).status_code == 303
    response = set_enabled(client)
    assert response.status_code == 303 and response.headers["Location"].endswith("/admin/plugins")
    html = client.get("/admin/plugins").get_data(as_text=True)
    assert "Gmail is enabled." in html
    row = re.search(r'<tr id="plugin-gmail">.*?</tr>', html, re.S).group(0)
    assert "configured" in row and "not configured" not in row and CLIENT_ID in row and SECRET not in html
    listed = plugins_json(runner)
    assert listed["gmail"]["enabled"] and listed["gmail"]["configured"] and listed["gmail"]["source"] == "admin"
    assert listed["gmail"]["client_id"] == CLIENT_ID and listed["gmail"]["secret_set"] is True
    assert not listed["google_drive"]["enabled"] and not listed["google_drive"]["configured"]
    assert SECRET not in json.dumps(listed)
    assert list(settings.usable_providers(signed_in_admin.team_id)) == ["gmail"]
    assert settings.credentials(signed_in_admin.team_id, "gmail") == settings.Credentials(CLIENT_ID, SECRET)


def test_htmx_toggle_rerenders_the_row(client, signed_in_admin):
    save_credentials(client)
    response = set_enabled(client, headers={"HX-Request": "true"})
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and "HX-Request" in response.headers.get("Vary", "")
    assert html.lstrip().startswith('<tr id="plugin-gmail">') and "<html" not in html
    assert "Gmail is enabled." in html and "Disable" in html
    response = set_enabled(client, enabled="0", headers={"HX-Request": "true"})
    assert "Gmail is disabled." in response.get_data(as_text=True)
    actions = [event.action for event in db.session.query(AuditEvent).order_by(AuditEvent.id)]
    assert actions[-3:] == ["provider.credentials_changed", "provider.enabled", "provider.disabled"]


def test_member_gets_404_on_the_plugins_page(client, auth, member):
    auth.login(member.email)
    assert client.get("/admin/plugins").status_code == 404
    token = client.csrf_token("/account")
    response = client.post("/admin/plugins/gmail/enabled", data={"enabled": "1", "csrf_token": token})
    assert response.status_code == 404
    assert db.session.query(ProviderSetting).count() == 0


def test_secret_is_never_shown_and_empty_secret_keeps_it(client, signed_in_admin):
    save_credentials(client)
    html = client.get("/admin/plugins").get_data(as_text=True)
    assert SECRET not in html and "stored; leave empty to keep it" in html
    assert save_credentials(client, client_id="new-id.apps.googleusercontent.com", client_secret="").status_code == 303
    assert settings.credentials  # the service, not the page, opens the secret
    settings.set_enabled(signed_in_admin.team_id, "gmail", True, actor=signed_in_admin)
    db.session.commit()
    assert settings.credentials(signed_in_admin.team_id, "gmail") == settings.Credentials(
        "new-id.apps.googleusercontent.com", SECRET)
    details = [json.loads(event.details) for event in db.session.query(AuditEvent)
               .filter_by(action="provider.credentials_changed").order_by(AuditEvent.id)]
    assert details[0]["client_secret_fingerprint"].startswith("fp:") and "client_secret_fingerprint" not in details[1]
    assert SECRET not in json.dumps(details)


@pytest.mark.parametrize("form, message", [
    ({"client_id": "", "client_secret": SECRET}, "Enter the client ID."),
    ({"client_id": CLIENT_ID, "client_secret": ""}, "Enter the client secret."),
    ({"client_id": "x" * 513, "client_secret": SECRET}, "The client ID is too long"),
    ({"client_id": "a\x00b", "client_secret": SECRET}, "control characters"),
    ({"client_secret": SECRET}, "Enter the client ID."),
])
def test_bad_credentials_input_gets_a_readable_400(client, signed_in_admin, form, message):
    response = client.submit("/admin/plugins/gmail/credentials", form, token_from="/admin/plugins")
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
    assert db.session.query(ProviderSetting).filter(ProviderSetting.client_id.isnot(None)).count() == 0


def test_unknown_provider_gets_404_and_bad_flag_400(client, signed_in_admin):
    assert save_credentials(client, name="nosuch").status_code == 404
    assert set_enabled(client, name="nosuch").status_code == 404
    response = set_enabled(client, enabled="maybe")
    assert response.status_code == 400 and "enable or disable" in response.get_data(as_text=True)


def test_errors_answer_htmx_with_a_flash_fragment(client, signed_in_admin):
    response = save_credentials(client, client_id="", headers={"HX-Request": "true"})
    assert response.status_code == 400 and response.headers["HX-Retarget"] == "#flash"
    assert "Enter the client ID." in response.get_data(as_text=True)


def test_post_without_csrf_token_is_refused(client, signed_in_admin):
    for path in ("/admin/plugins/gmail/enabled", "/admin/plugins/gmail/credentials"):
        response = client.post(path, data={"enabled": "1", "client_id": CLIENT_ID, "client_secret": SECRET})
        assert response.status_code == 400
        assert "security token" in response.get_data(as_text=True)
    assert db.session.query(ProviderSetting).count() == 0


def test_environment_credentials_show_as_set_by_environment_and_cannot_be_edited(app_config, client, auth, admin, runner):
    app = client.application
    app.config.update(GOOGLE_CLIENT_ID="env-id.apps.googleusercontent.com", GOOGLE_CLIENT_SECRET="env-secret-123456")
    auth.login(admin.email)
    html = client.get("/admin/plugins").get_data(as_text=True)
    assert "Set by environment" in html and "env-id.apps.googleusercontent.com" in html
    assert "env-secret-123456" not in html and 'name="client_secret"' not in html
    response = save_credentials(client)
    assert response.status_code == 409
    assert "set by the environment" in response.get_data(as_text=True)
    assert "GOOGLE_CLIENT_ID" in response.get_data(as_text=True)
    assert set_enabled(client).status_code == 303
    db.session.rollback()  # end the test's read snapshot so it sees what the requests committed
    assert settings.credentials(admin.team_id, "gmail") == settings.Credentials(
        "env-id.apps.googleusercontent.com", "env-secret-123456")
    listed = plugins_json(runner)
    assert listed["gmail"]["source"] == "environment" and listed["gmail"]["configured"]


def test_cli_lists_the_chosen_team_and_refuses_an_unknown_one(client, runner, signed_in_admin, make_user):
    other = make_user("admin@b.test", role="admin", team_name="Team B")
    other_team = other.team_id
    db.session.commit()
    assert save_credentials(client).status_code == 303
    assert plugins_json(runner)["gmail"]["configured"] is True  # the first team: the admin's
    assert plugins_json(runner, "--team", str(other_team))["gmail"]["configured"] is False
    result = runner.invoke(args=["portal", "plugins", "--team", "999"])
    assert result.exit_code == 2 and "there is no team 999" in result.output
    text = runner.invoke(args=["portal", "plugins"]).output
    assert re.search(r"gmail\s+active\s+mcp-portal-google \S+: disabled, configured, credentials from admin", text)
