"""Client secrets entered on the Plugins page stay sealed at rest and bound to their team's row."""
import pytest
from sqlalchemy import text

from portal.extensions import db
from portal.models import ProviderSetting
from portal.providers import settings

SECRET = "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9a0b"
OTHER_SECRET = "GOCSPX-team-b-0a9b8c7d6e5f4a3b2c1d"


def enter_credentials(client, auth, email, secret):
    assert auth.login(email).status_code == 303
    response = client.submit("/admin/plugins/gmail/credentials",
                             {"client_id": "id-1.apps.googleusercontent.com", "client_secret": secret},
                             token_from="/admin/plugins")
    assert response.status_code == 303
    assert client.submit("/admin/plugins/gmail/enabled", {"enabled": "1"}, token_from="/admin/plugins").status_code == 303
    auth.logout()


def database_dump(url):
    """Every byte a copy of the database would hold: the SQLite files, or every row of every table."""
    if url.startswith("sqlite:///"):
        path = url[len("sqlite:///"):]
        chunks = []
        for suffix in ("", "-wal", "-journal"):
            try:
                with open(path + suffix, "rb") as handle:
                    chunks.append(handle.read())
            except FileNotFoundError:
                pass
        return b"".join(chunks)
    tables = db.session.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")).scalars().all()
    rows = [row for table in tables for row in db.session.execute(text(f'SELECT t::text FROM "{table}" t')).scalars()]
    return "\n".join(rows).encode()


def test_client_secret_entered_on_the_page_is_not_in_the_database(client, auth, admin, database_url):
    enter_credentials(client, auth, "admin@a.test", SECRET)
    db.session.rollback()
    row = db.session.query(ProviderSetting).filter_by(provider="gmail").one()
    assert row.client_secret.startswith("v1.t1.") and row.client_id == "id-1.apps.googleusercontent.com"
    dump = database_dump(database_url)
    assert b"id-1.apps.googleusercontent.com" in dump  # the dump is real: public values are there
    assert SECRET.encode() not in dump and SECRET[7:].encode() not in dump
    assert settings.credentials(admin.team_id, "gmail").client_secret == SECRET


@pytest.fixture
def two_teams(client, auth, admin, make_user):
    other = make_user("admin@b.test", role="admin", team_name="Team B")
    teams = admin.team_id, other.team_id
    db.session.commit()
    enter_credentials(client, auth, "admin@a.test", SECRET)
    enter_credentials(client, auth, "admin@b.test", OTHER_SECRET)
    db.session.rollback()
    return teams


def test_secret_copied_into_another_teams_row_does_not_open(client, auth, two_teams):
    team_a, team_b = two_teams
    sealed_a = db.session.scalar(text("SELECT client_secret FROM provider_settings WHERE team_id = :t"), {"t": team_a})
    db.session.execute(text("UPDATE provider_settings SET client_secret = :s WHERE team_id = :t"),
                       {"s": sealed_a, "t": team_b})
    db.session.commit()
    with pytest.raises(settings.CredentialsUnreadable) as caught:
        settings.credentials(team_b, "gmail")
    assert caught.value.status == 400 and "cannot be read" in caught.value.message
    assert "enters the client secret again" in caught.value.next_step
    assert SECRET not in str(caught.value) and OTHER_SECRET not in str(caught.value)
    assert isinstance(caught.value, settings.ProviderNotConfigured)
    assert "gmail" not in settings.usable_providers(team_b)
    assert settings.credentials(team_a, "gmail").client_secret == SECRET
    auth.login("admin@b.test")
    page = client.get("/admin/plugins")
    assert page.status_code == 200 and "The stored client secret cannot be read" in page.get_data(as_text=True)


def test_credentials_refuse_a_provider_that_is_not_usable(client, auth, admin):
    team = admin.team_id
    with pytest.raises(settings.ProviderNotConfigured) as caught:
        settings.credentials(team, "gmail")
    assert caught.value.message == "OAuth provider not configured"
    assert "Plugins page" in caught.value.next_step and "GOOGLE_CLIENT_ID" in caught.value.next_step
    with pytest.raises(settings.ProviderNotConfigured):
        settings.credentials(team, "nosuch")
    settings.set_enabled(team, "gmail", True, actor=admin)
    db.session.commit()
    with pytest.raises(settings.ProviderNotConfigured):
        settings.credentials(team, "gmail")  # enabled but no credentials
    assert settings.usable_providers(team) == {}
