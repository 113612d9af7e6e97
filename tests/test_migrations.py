"""The schema is built only by migrations, and the models agree with them."""
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from portal.extensions import db


def test_models_match_migrations_without_autogenerate_diff(app):
    with db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        diff = compare_metadata(context, db.metadata)
    assert diff == [], f"models and migrations disagree: {diff}"


def test_migrations_have_one_head(app):
    config = app.extensions["migrate"].migrate.get_config()
    heads = ScriptDirectory.from_config(config).get_heads()
    assert len(heads) == 1, heads


def test_upgrade_leaves_the_audit_chain_at_genesis(app):
    from portal.models import AuditChainHead

    head = db.session.get(AuditChainHead, 1)
    assert head.last_hash == "0" * 64 and head.last_event_id == 0
