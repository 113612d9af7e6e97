"""Audit trail benchmark: a script that prints figures and ratios, not a timed test.

    .venv/bin/python benchmarks/audit_bench.py [--events 1000000] [--appends 2000] [--dbs postgresql,sqlite]

1. Append rate through ``audit.record()`` (one event per committed transaction, and 10 per
   transaction) with 1 and 4 writer processes, on SQLite and PostgreSQL.
2. ``--events`` events for one team (plus 5% for a second team) bulk-loaded with real chain
   hashes (COPY on PostgreSQL, executemany on SQLite); then the first page and a deep keyset
   page of filtered queries against the same query with OFFSET at that depth; the whole page
   request through the Flask test client; export rate and peak memory growth (RSS high-water
   mark) for the team's events; ``audit verify`` over the whole chain.

PostgreSQL uses a dedicated database that it drops and recreates (``--pg``, default
``bench_audit`` on 127.0.0.1); SQLite uses a temporary file.
"""
import argparse
import json
import multiprocessing
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

KEYS = {
    "SECRET_KEY": "bench-secret-key-0123456789abcdef0123456789",
    "ENCRYPTION_KEYS": "b1:" + "B" * 43,
    "AUDIT_KEY": "bench-audit-key-0123456789abcdef0123456789",
}
PASSWORD = "bench password 0123456789"
PG_DEFAULT = "postgresql://postgres@127.0.0.1:5432/bench_audit"
COLUMNS = ["id", "created_at", "actor_id", "actor_name", "team_id", "action", "target_type", "target_id",
           "target_label", "provider", "outcome", "request_id", "ip", "user_agent", "details", "prev_hash", "hash"]
# (action, weight, target type): a plausible mix, dominated by refreshes.
MIX = [("token.refreshed", 55, "connection"), ("token.refresh_failed", 4, "connection"),
       ("oauth.authorize.started", 6, "connection"), ("oauth.authorize.succeeded", 5, "connection"),
       ("oauth.authorize.failed", 1, "connection"), ("token.revoked", 2, "connection"),
       ("auth.login", 12, "users"), ("auth.logout", 9, "users"), ("auth.login_failed", 3, "users"),
       ("server.created", 1, "mcp_servers"), ("provider.credentials_changed", 0.5, "provider"),
       ("user.role_changed", 0.4, "users"), ("keys.rotated", 0.1, None)]
PROVIDERS = ["gmail", "google_drive", "github", "slack", "notion"]


def make_app(url, **extra):
    from portal import create_app

    return create_app({**KEYS, "SQLALCHEMY_DATABASE_URI": url, "RATELIMIT_ENABLED": False,
                       "RATELIMIT_STORAGE_URI": "memory://", **extra})


def fresh_database(kind, pg_url, workdir):
    """An empty schema built by the migrations; returns its URL."""
    from flask_migrate import upgrade
    from sqlalchemy import create_engine, text

    if kind == "sqlite":
        path = Path(workdir) / f"bench-{time.monotonic_ns()}.db"
        url = f"sqlite:///{path}"
    else:
        url = pg_url
        base, name = pg_url.rsplit("/", 1)
        engine = create_engine(base.replace("postgresql://", "postgresql+psycopg://", 1) + "/postgres",
                               isolation_level="AUTOCOMMIT")
        with engine.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        engine.dispose()
    app = make_app(url)
    with app.app_context():
        upgrade()
        from portal.extensions import db

        db.engine.dispose()
    return url


# --- 1. append rate ---------------------------------------------------------------------------

def _writer(url, count, per_transaction, relaxed, barrier, results):
    from portal import audit
    from portal.extensions import db

    app = make_app(url, **(_relaxed_options(url) if relaxed else {}))
    with app.app_context():
        if relaxed and url.startswith("sqlite"):
            _sqlite_synchronous_normal(db.engine)
        audit.record(audit.Action.TOKEN_REFRESHED, actor_name="warm-up", team_id=9)  # connect, derive keys
        db.session.commit()
        barrier.wait(timeout=120)
        started = time.perf_counter()
        for number in range(count):
            audit.record(audit.Action.TOKEN_REFRESHED, actor_name=f"writer-{os.getpid()}", team_id=1,
                         provider="gmail", target_type="connection", target_id=str(number), details={"n": number})
            if (number + 1) % per_transaction == 0:
                db.session.commit()
        db.session.commit()
        results.put((started, time.perf_counter()))
        db.engine.dispose()


def _relaxed_options(url):
    """PostgreSQL: commits return before the WAL is flushed (a crash may lose the last ~0.6 s)."""
    if url.startswith("postgresql"):
        return {"SQLALCHEMY_ENGINE_OPTIONS": {"connect_args": {"options": "-c synchronous_commit=off"}}}
    return {}


def _sqlite_synchronous_normal(engine):
    """SQLite WAL with synchronous=NORMAL: no fsync per commit (a power cut may lose the last commits)."""
    from sqlalchemy import event

    event.listen(engine, "connect", lambda connection, record: connection.execute("PRAGMA synchronous=NORMAL"))
    engine.dispose()


def append_rate(kind, url, writers, total, per_transaction=1, relaxed=False):
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(writers), context.Queue()
    processes = [context.Process(target=_writer, args=(url, total // writers, per_transaction, relaxed, barrier, results))
                 for _ in range(writers)]
    for process in processes:
        process.start()
    spans = [results.get(timeout=600) for _ in processes]
    for process in processes:
        process.join()
    assert all(process.exitcode == 0 for process in processes)
    elapsed = max(end for _, end in spans) - min(start for start, _ in spans)
    return (total // writers) * writers / elapsed


def check_chain(url):
    from portal import audit_chain
    from portal.extensions import db

    app = make_app(url)
    with app.app_context():
        started = time.perf_counter()
        report = audit_chain.verify(db.session, app)
        elapsed = time.perf_counter() - started
        db.engine.dispose()
    assert report.ok, report.message
    return report.checked, elapsed


APPEND_RUNS = [  # writers, events per transaction, relaxed durability
    (1, 1, False), (4, 1, False), (1, 10, False), (4, 10, False), (1, 1, True), (4, 1, True)]


def bench_appends(kinds, pg_url, workdir, total):
    figures = {}
    for kind in kinds:
        for writers, per_transaction, relaxed in APPEND_RUNS:
            url = fresh_database(kind, pg_url, workdir)
            rate = append_rate(kind, url, writers, total, per_transaction, relaxed)
            checked, _ = check_chain(url)
            assert checked == total + writers, (checked, total, writers)  # plus each writer's warm-up event
            figures[(kind, writers, per_transaction, relaxed)] = rate
            durability = ("synchronous_commit=off" if kind == "postgresql" else "synchronous=NORMAL") if relaxed else "durable commits"
            print(f"  append  {kind:<10} {writers} writer(s), {per_transaction:>2} event(s)/transaction, {durability:<22}: "
                  f"{rate:8,.0f} events/s   (chain of {checked:,} verified)", flush=True)
    return figures


# --- 2. a million events ----------------------------------------------------------------------

def generate(app, team_events, other_events, seed=7):
    """Rows with real chain hashes, in id order, times 30 s apart ending about now."""
    from portal.audit import GENESIS_HASH, chain_hash, chain_key

    rng = random.Random(seed)
    key, prev = chain_key(app), GENESIS_HASH
    total = team_events + other_events
    start = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(seconds=30 * (total + 100))
    actions = [entry[0] for entry in MIX]
    weights = [entry[1] for entry in MIX]
    targets = {entry[0]: entry[2] for entry in MIX}
    other_every = round(total / other_events) if other_events else 0
    picks = rng.choices(actions, weights, k=total)

    class Row:
        __slots__ = COLUMNS

    for index in range(total):
        row = Row()
        row.id, row.created_at = index + 1, start + timedelta(seconds=30 * index)
        row.team_id = 2 if other_every and index % other_every == other_every - 1 else 1
        row.actor_id = rng.randint(181, 200) if row.team_id == 2 else rng.randint(1, 180)
        row.actor_name = f"user{row.actor_id}@{'b' if row.team_id == 2 else 'a'}.test"
        row.action = picks[index]
        row.target_type = targets[row.action]
        row.target_id = None if row.target_type is None else str(row.actor_id if row.target_type == "users" else rng.randint(1, 5000))
        row.target_label = None
        row.provider = PROVIDERS[row.actor_id % len(PROVIDERS)] if row.target_type in ("connection", "provider") else None
        failed = row.action.endswith(("failed", "_failed"))
        row.outcome = "failure" if failed else "success"
        row.request_id, row.ip = f"{rng.getrandbits(64):016x}", f"10.0.{row.actor_id % 250}.{index % 250}"
        row.user_agent = "Mozilla/5.0 (bench)"
        row.details = json.dumps({"error": "timeout"} if failed else {"n": index % 100}, sort_keys=True, separators=(",", ":"))
        row.prev_hash = prev
        row.hash = prev = chain_hash(key, prev, _fields(row))
        yield row


def _fields(row):
    from portal.audit import hashed_fields

    return hashed_fields(row)


def _db_values(row):
    values = [getattr(row, name) for name in COLUMNS]
    values[1] = row.created_at.replace(tzinfo=None)  # stored as naive UTC, like UTCDateTime
    return values


def bulk_load(kind, url, team_events, other_events):
    """Load the rows fast (COPY / executemany) and move the chain head to the last one."""
    from sqlalchemy import text

    from portal.extensions import db

    app = make_app(url)
    with app.app_context():
        started, last = time.perf_counter(), None
        raw = db.engine.raw_connection()
        try:
            cursor = raw.cursor()
            rows = generate(app, team_events, other_events)
            if kind == "postgresql":
                cursor.execute("ALTER TABLE audit_events DISABLE TRIGGER audit_events_move_head")  # head set below
                with cursor.copy(f"COPY audit_events ({', '.join(COLUMNS)}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(_db_values(row))
                        last = row
                cursor.execute("ALTER TABLE audit_events ENABLE TRIGGER audit_events_move_head")
            else:
                insert = f"INSERT INTO audit_events ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
                cursor.execute("BEGIN")  # the portal's SQLite connections autocommit unless told
                batch = []
                for row in rows:
                    batch.append(_db_values(row))
                    last = row
                    if len(batch) == 50_000:
                        cursor.executemany(insert, batch)
                        batch = []
                cursor.executemany(insert, batch)
            raw.commit()
        finally:
            raw.close()
        with db.engine.begin() as connection:
            connection.execute(text("UPDATE audit_chain_head SET last_event_id = :id, last_hash = :h WHERE id = 1"),
                               {"id": last.id, "h": last.hash})
            if kind == "postgresql":
                connection.execute(text("SELECT setval(pg_get_serial_sequence('audit_events', 'id'), :id)"), {"id": last.id})
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("VACUUM ANALYZE audit_events" if kind == "postgresql" else "ANALYZE"))
        elapsed = time.perf_counter() - started
        _create_people()
        db.engine.dispose()
    return last.id, elapsed


def _create_people():
    """Teams 1 and 2 and users 1..200 (the actors in the data): user 1 is team 1's admin."""
    from portal import accounts
    from portal.extensions import db
    from portal.models import Team, User

    teams = [Team(name="Bench A"), Team(name="Bench B")]
    db.session.add_all(teams)
    db.session.flush()
    password_hash = accounts.hash_password(PASSWORD)
    for number in range(1, 201):
        team, domain = (teams[0], "a") if number <= 180 else (teams[1], "b")
        db.session.add(User(team=team, email=f"user{number}@{domain}.test", name=f"User {number}",
                            password_hash=password_hash, role="admin" if number == 1 else "member"))
        db.session.flush()
    db.session.commit()
    assert db.session.get(User, 200).email == "user200@b.test"


def median_ms(function, runs):
    function()  # warm: plans, caches
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        function()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def query_cases(team_events):
    from portal import audit_query
    from portal.audit_query import Filters, Scope

    days_back = 30 * team_events * 1.05 / 86400
    month_end = (datetime.now(timezone.utc) - timedelta(days=days_back / 2)).date()
    return [
        ("team (admin, no filter)", Scope(1), Filters()),
        ("action prefix token.", Scope(1), Filters(actions=audit_query._actions("token."))),
        ("action = token.refresh_failed", Scope(1), Filters(actions=("token.refresh_failed",))),
        ("actor id 42", Scope(1), Filters(actor="42")),
        ("provider = github", Scope(1), Filters(provider="github")),
        ("outcome = failure", Scope(1), Filters(outcome="failure")),
        ("30 days mid-range + token.", Scope(1), Filters(actions=audit_query._actions("token."),
                                                         date_from=month_end - timedelta(days=30), date_to=month_end)),
        ("member scope (user 2)", Scope(1, 2), Filters()),
        ("member scope + token.", Scope(1, 2), Filters(actions=audit_query._actions("token."))),
        ("actor text 'user42@'", Scope(1), Filters(actor="user42@")),
        ("actor text 'user4' (21 users)", Scope(1), Filters(actor="user4")),
    ]


def bench_queries(kind, url, team_events, offset_runs=3, keyset_runs=30):
    from sqlalchemy import func, select

    from portal import audit_query
    from portal.extensions import db
    from portal.models import AuditEvent

    app = make_app(url)
    results = []
    with app.app_context():
        session = db.session
        for label, scope, filters in query_cases(team_events):
            statement = audit_query.query(session, scope, filters)
            matches = session.scalar(select(func.count()).select_from(statement.subquery()))
            depth = max(0, int(matches * 0.8) - 50)
            first_ms = median_ms(lambda: audit_query.page(session, scope, filters, None, 50), keyset_runs)
            ordered = statement.order_by(AuditEvent.id.desc())
            offset_rows = session.execute(ordered.offset(depth).limit(50)).all()
            offset_ms = median_ms(lambda: session.execute(ordered.offset(depth).limit(50)).all(), offset_runs)
            before = offset_rows[0].id + 1 if offset_rows else None
            keyset_rows, _ = audit_query.page(session, scope, filters, before, 50) if offset_rows else ([], None)
            assert [r.id for r in keyset_rows] == [r.id for r in offset_rows], label  # same page either way
            deep_ms = median_ms(lambda: audit_query.page(session, scope, filters, before, 50), keyset_runs)
            results.append((label, matches, depth, first_ms, deep_ms, offset_ms))
            print(f"  query   {kind:<10} {label:<30} {matches:>9,} rows  first {first_ms:6.2f} ms  "
                  f"deep@{depth:>9,} {deep_ms:6.2f} ms  OFFSET {offset_ms:8.1f} ms  ×{offset_ms / deep_ms:,.0f}", flush=True)
            session.rollback()
        db.engine.dispose()
    return results


def bench_page_requests(kind, url, last_id, runs=20):
    from portal.extensions import db

    app = make_app(url, WTF_CSRF_ENABLED=False)
    figures = {}
    with app.app_context():
        client = app.test_client()
        assert client.post("/login", data={"email": "user1@a.test", "password": PASSWORD}).status_code == 303
        deep_id = last_id // 5  # 80% of the way down the newest-first list
        for label, path, headers in (
            ("page: first, action=token.", "/audit?action=token.", {}),
            ("page: deep keyset, action=token.", f"/audit?action=token.&before={deep_id}", {}),
            ("htmx load more: deep, action=token.", f"/audit?action=token.&before={deep_id}", {"HX-Request": "true"}),
        ):
            response = client.get(path, headers=headers)
            assert response.status_code == 200 and response.get_data(as_text=True).count('<tr id="event-') == 50
            figures[label] = median_ms(lambda: client.get(path, headers=headers).get_data(), runs)
            print(f"  request {kind:<10} {label:<38} {figures[label]:6.2f} ms  ({len(response.get_data()):,} bytes)", flush=True)
        db.engine.dispose()
    return figures


def _rss_kb(field):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(field)


def _export_worker(url, path, results):
    app = make_app(url, WTF_CSRF_ENABLED=False)
    with app.app_context():
        client = app.test_client()
        assert client.post("/login", data={"email": "user1@a.test", "password": PASSWORD}).status_code == 303
        client.get("/audit/export.jsonl?action=keys.rotated").get_data()  # warm up: templates, plans
        baseline = _rss_kb("VmRSS")
        Path("/proc/self/clear_refs").write_text("5")  # reset the high-water mark to now
        started, size, lines = time.perf_counter(), 0, 0
        response = client.get(path)
        for chunk in response.response:
            data = chunk if isinstance(chunk, bytes) else chunk.encode()
            size, lines = size + len(data), lines + data.count(b"\n")
        response.close()
        elapsed = time.perf_counter() - started
        results.put((lines, elapsed, size, (_rss_kb("VmHWM") - baseline) / 1024))


def bench_exports(kind, url):
    context = multiprocessing.get_context("spawn")
    figures = {}
    for path in ("/audit/export.jsonl", "/audit/export.csv"):
        results = context.Queue()
        process = context.Process(target=_export_worker, args=(url, path, results))
        process.start()
        lines, elapsed, size, growth_mb = results.get(timeout=900)
        process.join()
        events = lines - (1 if path.endswith(".csv") else 0)  # the CSV header
        figures[path] = (events, elapsed, size, growth_mb)
        print(f"  export  {kind:<10} {path:<22} {events:>9,} events in {elapsed:5.1f} s = {events / elapsed:8,.0f} events/s, "
              f"{size / 1e6:6.0f} MB, peak RSS growth {growth_mb:5.1f} MB", flush=True)
    return figures


def machine():
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())
    import sqlite3

    return f"{os.cpu_count()} cores ({model}), Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="events in the benchmarked team")
    parser.add_argument("--appends", type=int, default=1000, help="events appended per append run")
    parser.add_argument("--dbs", default="postgresql,sqlite", help="comma-separated: postgresql, sqlite")
    parser.add_argument("--pg", default=PG_DEFAULT, help="PostgreSQL URL of a database this may drop and recreate")
    parser.add_argument("--parts", default="appends,queries", help="comma-separated: appends, queries")
    args = parser.parse_args()
    kinds = [kind.strip() for kind in args.dbs.split(",") if kind.strip()]
    parts = {part.strip() for part in args.parts.split(",")}
    print(f"machine: {machine()}", flush=True)
    began = time.perf_counter()
    with tempfile.TemporaryDirectory() as workdir:
        if "appends" in parts:
            bench_appends(kinds, args.pg, workdir, args.appends)
        for kind in kinds if "queries" in parts else ():
            url = fresh_database(kind, args.pg, workdir)
            last_id, load_s = bulk_load(kind, url, args.events, args.events // 20)
            print(f"  load    {kind:<10} {last_id:,} events with chain hashes in {load_s:.1f} s", flush=True)
            bench_queries(kind, url, args.events)
            bench_page_requests(kind, url, last_id)
            bench_exports(kind, url)
            checked, verify_s = check_chain(url)
            print(f"  verify  {kind:<10} {checked:,} events in {verify_s:.1f} s = {checked / verify_s:,.0f} events/s", flush=True)
    print(f"total run time {time.perf_counter() - began:.0f} s")


if __name__ == "__main__":
    main()
