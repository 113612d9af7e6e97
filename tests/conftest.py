"""Fixtures: an app on a migrated database (SQLite, or PostgreSQL when configured), users, clients."""
import os

import pytest
from sqlalchemy import create_engine, text

from portal import create_app
from portal.extensions import db
from tests.support import TEST_KEYS, PortalClient, copy_sqlite, need, upgrade

POSTGRES_URL = os.environ.get("PORTAL_TEST_DATABASE_URL")
REDIS_URL = os.environ.get("PORTAL_TEST_REDIS_URL")
PASSWORD = "correct horse battery staple"
# Plugin distributions are installed and tested in a subprocess (test_plugins_dists.py).
collect_ignore_glob = ["plugin_dists/*"]

pytest_plugins = ["tests.peers.fixtures"]


@pytest.fixture(scope="session")
def migrated_database(tmp_path_factory):
    """The database every test starts from, built once per run by the migrations."""
    if POSTGRES_URL:
        engine = create_engine(POSTGRES_URL.replace("postgresql://", "postgresql+psycopg://", 1))
        try:
            with engine.begin() as connection:
                connection.execute(text("DROP SCHEMA public CASCADE"))
                connection.execute(text("CREATE SCHEMA public"))
        except Exception as error:
            need("PostgreSQL", f"{POSTGRES_URL}: {error}")
        finally:
            engine.dispose()
        upgrade(POSTGRES_URL)
        return {"kind": "postgresql", "url": POSTGRES_URL}
    template = tmp_path_factory.mktemp("template") / "portal.db"
    upgrade(f"sqlite:///{template}")
    return {"kind": "sqlite", "template": template}


@pytest.fixture
def database_url(migrated_database, tmp_path):
    """A clean database for one test."""
    if migrated_database["kind"] == "postgresql":
        _truncate_postgres(migrated_database["url"])
        return migrated_database["url"]
    path = tmp_path / "portal.db"
    copy_sqlite(migrated_database["template"], path)
    return f"sqlite:///{path}"


def _truncate_postgres(url):
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.begin() as connection:
        tables = connection.execute(text(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'alembic_version'"
        )).scalars().all()
        connection.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        connection.execute(text("INSERT INTO audit_chain_head (id, last_event_id, last_hash, updated_at) "
                                "VALUES (1, 0, :h, now())"), {"h": "0" * 64})
    engine.dispose()


@pytest.fixture
def app_config(database_url):
    """Overrides for create_app; tests may add to it before the app fixture is used."""
    return {
        **TEST_KEYS,
        "TESTING": True,
        "SQLALCHEMY_DATABASE_URI": database_url,
        "RATELIMIT_STORAGE_URI": "memory://",
        "RATELIMIT_ENABLED": False,
    }


@pytest.fixture
def app(app_config):
    app = create_app(app_config)
    app.test_client_class = PortalClient
    with app.app_context():
        yield app
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def make_user(app):
    """Create a user: make_user("a@x.test", role="admin", team=None) -> User (committed)."""
    from portal import accounts
    from portal.models import Team

    def factory(email, role="member", team=None, password=PASSWORD, team_name="Team A"):
        team = team or Team(name=team_name)
        db.session.add(team)
        user = accounts.create_user(team, email, None, password, role=role)
        db.session.commit()
        return user

    return factory


@pytest.fixture
def admin(make_user):
    return make_user("admin@a.test", role="admin")


@pytest.fixture
def member(make_user, admin):
    return make_user("member@a.test", team=admin.team)


class Auth:
    def __init__(self, client):
        self.client = client

    def login(self, email, password=PASSWORD):
        return self.client.submit("/login", {"email": email, "password": password})

    def logout(self):
        return self.client.submit("/logout", token_from="/account")


@pytest.fixture
def auth(client):
    return Auth(client)


@pytest.fixture
def redis_url():
    """The real Redis for tests that need one (PORTAL_TEST_REDIS_URL)."""
    if not REDIS_URL:
        need("Redis", "PORTAL_TEST_REDIS_URL is not set")
    import redis

    try:
        redis.Redis.from_url(REDIS_URL).ping()
    except Exception as error:
        need("Redis", f"{REDIS_URL}: {error}")
    return REDIS_URL


@pytest.fixture
def world(app_config, request):
    """Team A (admin, owner, teammate) and team O (other_admin), signed in, with A's objects on
    demand: the cross-cutting route tests' world (tests/access_world.py)."""
    from tests.access_world import World, world_config

    world_config(app_config)
    return World(request.getfixturevalue("app"))
