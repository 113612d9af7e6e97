"""Real gunicorn workers: one sign-in limit shared through Redis, a per-process fallback without it."""
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx
import redis
from sqlalchemy import create_engine, text

from portal.config import normalise_database_url
from tests.gunicorn_support import Gunicorn, free_port, portal_env
from tests.support import CSRF_INPUT

LIMIT = "5/minute"


def sign_in_attempts(base, count):
    """``count`` wrong-password sign-ins at once, each on its own connection: [(status, Retry-After)]."""
    page = httpx.get(base + "/login")
    cookie, token = page.cookies["portal_session"], CSRF_INPUT.search(page.text).group(1)

    def attempt(_):
        with httpx.Client(base_url=base, headers={"Cookie": f"portal_session={cookie}"}) as client:
            response = client.post("/login", data={"email": "victim@a.test", "password": "wrong password!",
                                                   "csrf_token": token})
            return response.status_code, response.headers.get("Retry-After")

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(attempt, range(count)))


def posts_by_worker(server):
    """{worker pid: Counter of statuses} for the sign-in POSTs."""
    served = {}
    for pid, method, path, status in server.access_log():
        if method == "POST" and path == "/login":
            served.setdefault(pid, Counter())[status] += 1
    return served


def count_events(database_url, action):
    engine = create_engine(normalise_database_url(database_url))
    with engine.connect() as connection:
        count = connection.execute(text("SELECT count(*) FROM audit_events WHERE action = :a"), {"a": action})
        result = count.scalar_one()
    engine.dispose()
    return result


def test_four_workers_share_one_login_limit_through_redis(redis_url, database_url, tmp_path):
    store = redis.Redis.from_url(redis_url)
    for key in store.scan_iter("LIMITS*"):
        store.delete(key)
    store.close()
    env = portal_env(database_url, PORTAL_RATELIMIT_STORAGE_URI=redis_url, PORTAL_RATELIMIT_LOGIN=LIMIT)
    with Gunicorn(env, tmp_path / "gunicorn", workers=4, preload=True) as server:
        results = sign_in_attempts(server.url, 20)
    statuses = Counter(status for status, _ in results)
    assert statuses == {401: 5, 429: 15}
    assert all(1 <= int(retry) <= 60 for status, retry in results if status == 429)
    served = posts_by_worker(server)
    assert len(served) > 1, "one worker served every request; the shared count was not exercised"
    assert sum(counts[401] for counts in served.values()) == 5
    assert count_events(database_url, "ratelimit.exceeded") == 1  # the audit throttle is shared too


def test_workers_keep_serving_and_limit_login_per_process_without_redis(database_url, tmp_path):
    closed = f"redis://127.0.0.1:{free_port()}/0"
    env = portal_env(database_url, PORTAL_RATELIMIT_STORAGE_URI=closed, PORTAL_RATELIMIT_LOGIN=LIMIT)
    with Gunicorn(env, tmp_path / "gunicorn", workers=2, preload=True) as server:
        pages = [httpx.get(server.url + "/login").status_code for _ in range(6)]
        results = sign_in_attempts(server.url, 30)
        pages += [httpx.get(server.url + "/login").status_code for _ in range(6)]
        log = server.log_tail(200)
    assert pages == [200] * 12
    assert all(status in (401, 429) for status, _ in results)
    served = posts_by_worker(server)
    for pid, counts in served.items():  # each worker counts on its own
        assert counts[401] == min(5, sum(counts.values())), (pid, counts)
    assert server.output().count("rate-limit storage redis is unreachable") == len(served)  # once per worker
    assert "Traceback" not in log + server.output()
