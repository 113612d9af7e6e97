"""Run the portal under real gunicorn for a test: a free 127.0.0.1 port, N workers, given env.

    env = portal_env(database_url, PORTAL_RATELIMIT_LOGIN="5/minute")
    with Gunicorn(env, tmp_path, workers=4) as server:
        httpx.get(server.url + "/login")
    server.access_log()   # [(worker pid, method, path, status), ...]

``start()`` returns once every worker has loaded the app (a ``post_worker_init`` hook writes a
line per worker to the error log), so requests are spread over all of them from the first one.
"""
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from tests.support import TEST_KEYS

ROOT = Path(__file__).resolve().parent.parent
GUNICORN = Path(sys.executable).parent / "gunicorn"
READY = "portal-test worker ready"
HOOKS = f'''
import os


def post_worker_init(worker):
    worker.log.info("{READY} pid=%s", worker.pid)


def worker_exit(server, worker):
    os._exit(0)  # a test worker needs no interpreter teardown (seconds on a busy machine)
'''
ACCESS_FORMAT = "%(p)s %(m)s %(U)s %(s)s"


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def portal_env(database_url, **settings):
    """The process environment without any outer PORTAL_* variable, plus the test keys."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("PORTAL_")}
    env.update({
        "PORTAL_ENV": "development",
        "PORTAL_DATABASE_URL": database_url,
        "PORTAL_SECRET_KEY": TEST_KEYS["SECRET_KEY"],
        "PORTAL_ENCRYPTION_KEYS": TEST_KEYS["ENCRYPTION_KEYS"],
        "PORTAL_AUDIT_KEY": TEST_KEYS["AUDIT_KEY"],
    })
    env.update({name: str(value) for name, value in settings.items()})
    return env


class Gunicorn:
    def __init__(self, env, directory, workers=1, app="wsgi:app", preload=False, ready_timeout=30):
        """``preload`` imports the app once in the master before forking (start-up in one import
        instead of N on a busy machine); the workers are still separate processes."""
        self.env, self.directory, self.workers, self.app = env, Path(directory), workers, app
        self.preload, self.ready_timeout = preload, ready_timeout
        self.process = self._output = None
        self.port = None

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def start(self):
        self.directory.mkdir(parents=True, exist_ok=True)
        hooks = self.directory / "gunicorn_hooks.py"
        hooks.write_text(HOOKS)
        self.error_log, self.access_path = self.directory / "error.log", self.directory / "access.log"
        self.output_path = self.directory / "output.log"
        self._output = self.output_path.open("wb")
        self.port = free_port()
        self.process = subprocess.Popen(
            [str(GUNICORN), "--workers", str(self.workers), "--bind", f"127.0.0.1:{self.port}",
             "--config", str(hooks), "--error-logfile", str(self.error_log),
             "--access-logfile", str(self.access_path), "--access-logformat", ACCESS_FORMAT,
             "--no-control-socket", *(["--preload"] if self.preload else []), self.app],
            cwd=ROOT, env=self.env, stdout=self._output, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._wait_until_ready()

    def _wait_until_ready(self):
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.stop()
                raise RuntimeError(f"gunicorn exited with {self.process.returncode}:\n{self.log_tail()}")
            if self._log_text().count(READY) >= self.workers:
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"gunicorn not ready after {self.ready_timeout}s:\n{self.log_tail()}")

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGQUIT)  # quick shutdown
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=5)
        if self._output is not None:
            self._output.close()

    def _log_text(self):
        try:
            return self.error_log.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def output(self):
        """What the app wrote to stdout and stderr (its warnings, when no logging is configured)."""
        return self.output_path.read_text(errors="replace")

    def log_tail(self, lines=40):
        return "\n".join(self._log_text().splitlines()[-lines:])

    def access_log(self):
        """``[(worker pid, method, path, status)]`` of the requests served so far."""
        try:
            rows = self.access_path.read_text().splitlines()
        except FileNotFoundError:
            return []
        return [(int(pid.strip("<>")), method, path, int(status)) for pid, method, path, status in
                (row.split(" ") for row in rows if row.count(" ") == 3)]
