"""Flask extensions, created once and attached to each app with ``init_app``."""
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import CSRFProtect
from sqlalchemy import MetaData, event
from sqlalchemy.engine import Engine

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

db = SQLAlchemy(metadata=MetaData(naming_convention=NAMING))
migrate = Migrate()
login_manager = LoginManager()
csrf = CSRFProtect()
limiter = Limiter(key_func=get_remote_address, default_limits=[])


def init_app(app):
    db.init_app(app)
    migrate.init_app(app, db, render_as_batch=True, compare_type=True, directory=str(app.config.get("MIGRATIONS_DIR") or _migrations_dir()))
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message = "Please sign in to continue."
    login_manager.session_protection = "basic"
    csrf.init_app(app)


def _migrations_dir():
    from portal import ROOT

    return ROOT / "migrations"


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection, connection_record):
    """WAL, foreign keys and a busy timeout for SQLite; a no-op for other databases.

    pysqlite's own transaction handling is switched off so that ``_sqlite_begin`` emits BEGIN
    itself: a connection with the execution option ``sqlite_begin="IMMEDIATE"`` takes the write
    lock at the start of its transaction, which is how SQLite gets a row-lock equivalent.
    """
    if type(dbapi_connection).__module__.startswith("sqlite3"):
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.close()


@event.listens_for(Engine, "begin")
def _sqlite_begin(connection):
    if connection.dialect.name == "sqlite":
        options = connection.get_execution_options()
        mode = options.get("sqlite_begin", "DEFERRED")
        wait_ms = options.get("sqlite_busy_timeout")  # a bounded wait for this transaction's lock only
        if wait_ms is None:
            connection.exec_driver_sql(f"BEGIN {mode}")
            return
        previous = connection.exec_driver_sql("PRAGMA busy_timeout").scalar()
        connection.exec_driver_sql(f"PRAGMA busy_timeout={int(wait_ms)}")
        try:
            connection.exec_driver_sql(f"BEGIN {mode}")
        finally:
            connection.exec_driver_sql(f"PRAGMA busy_timeout={int(previous)}")
