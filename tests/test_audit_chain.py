"""The audit chain: verify catches every kind of tampering, prune keeps it verifiable, appends
from several processes form one chain, and PostgreSQL's trigger refuses UPDATE and DELETE."""
import multiprocessing
import re
from contextlib import contextmanager
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from portal import audit, audit_chain, create_app
from portal.audit import Action
from portal.extensions import db
from portal.models import AuditChainHead, AuditEvent
from tests.support import TEST_KEYS

VERIFY = ["portal", "audit", "verify"]


def append(count, team_id=1, **fields):
    for number in range(count):
        audit.record(Action.TOKEN_REFRESHED, actor_name="job", team_id=team_id, provider="gmail",
                     details={"n": number}, **fields)
        db.session.commit()


def ids():
    return db.session.execute(select(AuditEvent.id).order_by(AuditEvent.id)).scalars().all()


def is_postgres():
    return db.engine.dialect.name == "postgresql"


@contextmanager
def tampering():
    """A connection that can change audit rows as an attacker with database access would."""
    db.session.remove()
    with db.engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only"))
        yield connection
        if connection.dialect.name == "postgresql":
            connection.execute(text("ALTER TABLE audit_events ENABLE TRIGGER audit_events_append_only"))


def verify(runner):
    result = runner.invoke(args=VERIFY)
    return result.exit_code, result.output


def test_verify_passes_on_clean_chain(runner):
    append(5)
    code, output = verify(runner)
    assert code == 0, output
    assert "OK: 5 events verified from genesis" in output


def test_verify_passes_on_empty_chain(runner):
    assert verify(runner) == (0, "OK: 0 events verified from genesis.\n")


def test_verify_catches_edited_event(runner):
    append(5)
    with tampering() as connection:
        connection.execute(text("UPDATE audit_events SET outcome = 'failure' WHERE id = 3"))
    code, output = verify(runner)
    assert code == 1
    assert "BROKEN at event #3 (edited)" in output and "2 events before it verified" in output


def test_verify_catches_edited_details_even_with_hash_of_attackers_choice(runner):
    append(5)
    with tampering() as connection:
        connection.execute(text("UPDATE audit_events SET details = :d, hash = :h WHERE id = 2"),
                           {"d": '{"n":99}', "h": "f" * 64})
    code, output = verify(runner)
    assert code == 1 and "BROKEN at event #2 (edited)" in output


def test_verify_catches_deleted_event(runner):
    append(5)
    with tampering() as connection:
        connection.execute(text("DELETE FROM audit_events WHERE id = 3"))
    code, output = verify(runner)
    assert code == 1
    assert "BROKEN at event #4 (deleted)" in output


def test_verify_catches_deleted_first_event(runner):
    append(3)
    with tampering() as connection:
        connection.execute(text("DELETE FROM audit_events WHERE id = 1"))
    code, output = verify(runner)
    assert code == 1 and "BROKEN at event #2 (deleted)" in output


def test_verify_catches_deleted_last_events(runner):
    append(5)
    with tampering() as connection:
        connection.execute(text("DELETE FROM audit_events WHERE id >= 4"))
    code, output = verify(runner)
    assert code == 1
    assert "(deleted)" in output and "chain ends at #3" in output


def test_verify_catches_reordered_events(runner):
    append(5)
    with tampering() as connection:  # swap events 2 and 3
        connection.execute(text("UPDATE audit_events SET id = 1000 WHERE id = 2"))
        connection.execute(text("UPDATE audit_events SET id = 2 WHERE id = 3"))
        connection.execute(text("UPDATE audit_events SET id = 3 WHERE id = 1000"))
    code, output = verify(runner)
    assert code == 1
    assert "BROKEN at event #2 (reordered)" in output and "later event #3" in output


def _copy_event(connection, source_id, new_id):
    columns = [c.name for c in AuditEvent.__table__.columns if c.name != "id"]
    names = ", ".join(columns)
    connection.execute(text(f"INSERT INTO audit_events (id, {names}) SELECT :new, {names} FROM audit_events "
                            "WHERE id = :source"), {"new": new_id, "source": source_id})


def test_verify_catches_inserted_copy_even_when_head_moves_with_it(runner):
    append(4)
    with tampering() as connection:  # replay event 2 at the end (the insert moves the head to it)
        _copy_event(connection, 2, 5)
    assert db.session.get(AuditChainHead, 1).last_event_id == 5
    code, output = verify(runner)
    assert code == 1
    assert "BROKEN at event #5 (inserted)" in output and "earlier event #1" in output


def test_verify_catches_event_inserted_beyond_head(runner):
    append(3)
    with tampering() as connection:  # the insert moves the head; the attacker moves it back
        head = connection.execute(text("SELECT last_event_id, last_hash FROM audit_chain_head")).one()
        _copy_event(connection, 3, 4)
        connection.execute(text("UPDATE audit_chain_head SET last_event_id = :id, last_hash = :h"),
                           {"id": head.last_event_id, "h": head.last_hash})
    code, output = verify(runner)
    assert code == 1 and "BROKEN at event #4 (inserted)" in output


def test_verify_catches_forged_event(runner):
    append(3)
    with tampering() as connection:
        prev = connection.execute(text("SELECT hash FROM audit_events WHERE id = 3")).scalar()
        _copy_event(connection, 3, 4)
        connection.execute(text("UPDATE audit_events SET prev_hash = :p, actor_name = 'mallory' WHERE id = 4"), {"p": prev})
        connection.execute(text("UPDATE audit_chain_head SET last_event_id = 4"))
    code, output = verify(runner)
    assert code == 1 and "BROKEN at event #4 (edited)" in output


def test_verify_reads_chain_in_batches(app):
    append(7)
    report = audit_chain.verify(db.session, app, batch=3)
    assert report.ok and report.checked == 7


def test_record_reads_head_once_per_transaction(app):
    statements = []

    def capture(conn, cursor, statement, *args):
        statements.append(statement)

    from sqlalchemy import event

    event.listen(db.engine, "before_cursor_execute", capture)
    try:
        for number in range(3):
            audit.record(Action.TOKEN_REFRESHED, actor_name="job", team_id=1, details={"n": number})
        db.session.commit()
    finally:
        event.remove(db.engine, "before_cursor_execute", capture)
    head_reads = [s for s in statements if "audit_chain_head" in s and "RETURNING" in s.upper()]
    assert len(head_reads) == 1
    assert audit_chain.verify(db.session, app).checked == 3


# --- prune ------------------------------------------------------------------------------------

@pytest.fixture
def dated_events(monkeypatch):
    """Six events, two a day on 2025-01-01..03, then the clock back to now."""
    for day in (1, 2, 3):
        for hour in (9, 17):
            stamp = datetime(2025, 1, day, hour, tzinfo=timezone.utc)
            monkeypatch.setattr(audit, "utcnow", lambda stamp=stamp: stamp)
            append(1)
    monkeypatch.undo()
    return ids()


def test_prune_removes_old_events_and_verify_still_passes(runner, dated_events):
    result = runner.invoke(args=["portal", "audit", "prune", "--before", "2025-01-03"])
    assert result.exit_code == 0, result.output
    assert "Pruned 4 events created before 2025-01-03" in result.output
    assert ids() == dated_events[4:] + [dated_events[-1] + 1]
    anchor = db.session.execute(select(AuditEvent).order_by(AuditEvent.id.desc()).limit(1)).scalar_one()
    assert anchor.action == "audit.pruned" and anchor.actor_name == "system"
    import json

    cut = json.loads(anchor.details)
    first_kept = db.session.get(AuditEvent, dated_events[4])
    assert cut == {"before": "2025-01-03", "removed": 4, "first_kept_id": dated_events[4],
                   "first_kept_prev_hash": first_kept.prev_hash}
    code, output = verify(runner)
    assert code == 0, output
    assert f"3 events verified from anchor #{anchor.id}" in output


def test_prune_twice_verifies_from_newest_anchor(runner, dated_events):
    assert runner.invoke(args=["portal", "audit", "prune", "--before", "2025-01-02"]).exit_code == 0
    append(2)
    assert runner.invoke(args=["portal", "audit", "prune", "--before", "2025-01-03"]).exit_code == 0
    code, output = verify(runner)
    assert code == 0, output
    assert "6 events verified from anchor" in output  # 2 kept + anchor 1 + 2 appended + anchor 2


def test_prune_everything_leaves_only_the_anchor(runner, dated_events):
    tomorrow = (date.today() + timedelta(days=2)).isoformat()
    result = runner.invoke(args=["portal", "audit", "prune", "--before", tomorrow])
    assert result.exit_code == 0, result.output
    assert len(ids()) == 1
    code, output = verify(runner)
    assert code == 0 and "1 events verified from anchor" in output
    append(2)
    assert verify(runner)[0] == 0


def test_prune_with_nothing_old_changes_nothing(runner, dated_events):
    result = runner.invoke(args=["portal", "audit", "prune", "--before", "2024-06-01"])
    assert result.exit_code == 0 and "Nothing to prune" in result.output
    assert ids() == dated_events


def test_prune_refuses_when_chain_is_broken(runner, dated_events):
    with tampering() as connection:
        connection.execute(text("UPDATE audit_events SET actor_name = 'x' WHERE id = :id"), {"id": dated_events[1]})
    result = runner.invoke(args=["portal", "audit", "prune", "--before", "2025-01-03"])
    assert result.exit_code == 1 and "Refused" in result.output and "Nothing was removed" in result.output
    assert ids() == dated_events


def test_verify_catches_deleted_anchor_after_prune(runner, dated_events):
    assert runner.invoke(args=["portal", "audit", "prune", "--before", "2025-01-03"]).exit_code == 0
    append(1)
    with tampering() as connection:
        connection.execute(text("DELETE FROM audit_events WHERE action = 'audit.pruned'"))
    code, output = verify(runner)
    assert code == 1 and f"BROKEN at event #{dated_events[4]} (deleted)" in output


def test_verify_catches_deleted_first_kept_event_after_prune(runner, dated_events):
    assert runner.invoke(args=["portal", "audit", "prune", "--before", "2025-01-03"]).exit_code == 0
    with tampering() as connection:
        connection.execute(text("DELETE FROM audit_events WHERE id = :id"), {"id": dated_events[4]})
    code, output = verify(runner)
    assert code == 1 and "(deleted)" in output and f"event #{dated_events[4]}, where the kept chain starts" in output


def test_prune_rejects_malformed_date(runner):
    result = runner.invoke(args=["portal", "audit", "prune", "--before", "03/01/2025"])
    assert result.exit_code == 2 and "--before" in result.output


def test_source_has_no_update_or_delete_path_but_prune():
    """Nothing in portal/ updates or deletes audit events except audit_chain.prune."""
    pattern = re.compile(r"(update|delete)\(\s*AuditEvent|(UPDATE|DELETE\s+FROM)\s+audit_events|"
                         r"session\.delete\(\s*event", re.IGNORECASE)
    root = Path(__file__).resolve().parent.parent / "portal"
    offenders = {str(path.relative_to(root)): pattern.findall(path.read_text())
                 for path in root.rglob("*.py") if pattern.search(path.read_text())}
    assert offenders == {"audit_chain.py": [("delete", "")]}


# --- PostgreSQL trigger -----------------------------------------------------------------------

def test_postgres_trigger_rejects_update_and_delete(app):
    if not is_postgres():
        pytest.skip("PostgreSQL only: the append-only trigger")
    append(2)
    db.session.remove()
    for statement in ("UPDATE audit_events SET outcome = 'failure' WHERE id = 1", "DELETE FROM audit_events WHERE id = 2"):
        with pytest.raises(DBAPIError, match="append-only"):
            with db.engine.begin() as connection:
                connection.execute(text(statement))
    assert ids() == [1, 2]


def test_postgres_trigger_allows_delete_only_with_prune_flag(app):
    if not is_postgres():
        pytest.skip("PostgreSQL only: the append-only trigger")
    append(2)
    db.session.remove()
    with pytest.raises(DBAPIError, match="append-only"):
        with db.engine.begin() as connection:
            connection.execute(text("SET LOCAL portal.audit_prune = 'on'"))
            connection.execute(text("UPDATE audit_events SET outcome = 'failure' WHERE id = 1"))
    with db.engine.begin() as connection:
        connection.execute(text("SET LOCAL portal.audit_prune = 'on'"))
        connection.execute(text("DELETE FROM audit_events WHERE id = 1"))
    assert ids() == [2]


# --- concurrency ------------------------------------------------------------------------------

def _append_in_process(url, worker, count, barrier):
    app = create_app({**TEST_KEYS, "SQLALCHEMY_DATABASE_URI": url, "TESTING": True})
    with app.app_context():
        barrier.wait(timeout=60)
        for number in range(count):
            audit.record(Action.TOKEN_REFRESHED, actor_name=f"worker-{worker}", team_id=1,
                         details={"worker": worker, "n": number})
            db.session.commit()
        db.session.remove()
        db.engine.dispose()


def test_append_from_four_processes_gives_one_valid_chain(app, runner):
    url = app.config["SQLALCHEMY_DATABASE_URI"]
    db.session.remove()
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(4)
    workers = [context.Process(target=_append_in_process, args=(url, worker, 250, barrier)) for worker in range(4)]
    for process in workers:
        process.start()
    for process in workers:
        process.join(timeout=110)
    assert [process.exitcode for process in workers] == [0, 0, 0, 0]
    per_worker = dict(db.session.execute(select(AuditEvent.actor_name, func.count()).group_by(AuditEvent.actor_name)).all())
    assert per_worker == {f"worker-{worker}": 250 for worker in range(4)}
    head = db.session.get(AuditChainHead, 1)
    assert head.last_event_id == max(ids())
    code, output = verify(runner)
    assert code == 0, output
    assert "OK: 1000 events verified" in output
