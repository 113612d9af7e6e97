"""Real plugin distributions, installed with pip: the good one loads, broken ones are listed, the portal serves.

The packages under tests/plugin_dists are built and installed with real pip (offline: no index,
no build isolation) into a folder put on PYTHONPATH of a fresh ``flask --app wsgi`` process, as
an operator's ``pip install`` would put them on the portal's path.
"""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import TEST_KEYS

ROOT = Path(__file__).resolve().parent.parent
DISTS = Path(__file__).resolve().parent / "plugin_dists"
BIN = Path(sys.executable).parent
EXPECTED_FAILURES = {
    "broken_import = portal_broken_import:Provider": "import error: RuntimeError: this plugin cannot be imported",
    "gmail_duplicate = portal_duplicate_gmail:Gmail": "duplicate name: 'gmail'",
    "wrong_type = portal_wrong_type:NotAProvider": "wrong type:",
    "wrong_version = portal_wrong_version:FutureProvider": "incompatible version: plugin targets contract 99",
    "missing_attr = portal_missing_attr:NoTokenUrl": "missing setting: token_url",
}
SERVE_LOGIN = """
from portal import create_app
from portal.providers.registry import registry
app = create_app()
with app.app_context():
    print(sorted(registry(app).active))
print(app.test_client().get("/login").status_code)
"""


@pytest.fixture(scope="module")
def plugin_path(tmp_path_factory):
    """Every distribution under tests/plugin_dists, pip-installed into one target folder."""
    sources = tmp_path_factory.mktemp("sources")
    for dist in DISTS.iterdir():
        shutil.copytree(dist, sources / dist.name)  # builds write build/ and egg-info beside the source
    target = tmp_path_factory.mktemp("site")
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
                    "--no-build-isolation", "--target", str(target), *sorted(map(str, sources.iterdir()))],
                   check=True, capture_output=True, timeout=300)
    return target


@pytest.fixture
def portal_env(plugin_path, database_url):
    """The environment of a portal process on the test database with the plugins on its path."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("PORTAL_", "GOOGLE_", "FLASK_", "PYTHON"))}
    env.update(PYTHONPATH=str(plugin_path), PORTAL_ENV="development", PORTAL_DATABASE_URL=database_url,
               PORTAL_SECRET_KEY=TEST_KEYS["SECRET_KEY"], PORTAL_ENCRYPTION_KEYS=TEST_KEYS["ENCRYPTION_KEYS"],
               PORTAL_AUDIT_KEY=TEST_KEYS["AUDIT_KEY"], PORTAL_RATELIMIT_STORAGE_URI="memory://")
    return env


def run(args, env):
    result = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_pip_installed_plugins_are_listed_active_or_failed_with_reason(portal_env):
    listed = json.loads(run([str(BIN / "flask"), "--app", "wsgi", "portal", "plugins", "--json"], portal_env).stdout)
    by_name = {entry["name"]: entry for entry in listed["plugins"]}
    example = by_name["example"]
    assert example["failure"] is None and example["distribution"] == "portal-example-provider"
    assert example["version"] == "1.2.0" and example["enabled"] is False and example["configured"] is False
    assert example["env"] == ["EXAMPLE_CLIENT_ID", "EXAMPLE_CLIENT_SECRET"]
    assert by_name["gmail"]["distribution"] == "mcp-portal-google" and by_name["gmail"]["failure"] is None
    assert by_name["gmail_duplicate"]["title"] == "Not Gmail" and by_name["gmail_duplicate"]["failure"]
    failures = {entry["entry_point"]: entry["failure"] for entry in listed["plugins"] if entry["failure"]}
    assert set(failures) == set(EXPECTED_FAILURES)
    for entry_point, reason in EXPECTED_FAILURES.items():
        assert failures[entry_point].startswith(reason), failures[entry_point]


def test_portal_serves_with_broken_plugins_installed(portal_env):
    lines = run([sys.executable, "-c", SERVE_LOGIN], portal_env).stdout.strip().splitlines()
    assert lines[-2] == str(["example", "gmail", "google_drive"])
    assert lines[-1] == "200"


def test_text_listing_names_each_failed_plugin(portal_env):
    output = run([str(BIN / "flask"), "--app", "wsgi", "portal", "plugins"], portal_env).stdout
    assert "team: (none: installed plugins only)" in output
    assert "example" in output and "active" in output
    for entry_point in EXPECTED_FAILURES:
        assert f"{entry_point}" in output and "FAILED" in output


def test_example_plugin_passes_its_own_contract_tests(plugin_path, tmp_path):
    shutil.copytree(DISTS / "example" / "tests", tmp_path / "tests")
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PYTHON", "PYTEST"))}
    env["PYTHONPATH"] = str(plugin_path)
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "error",
                             str(tmp_path / "tests")], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stdout[-3000:]
    from portal.providers.testing import ProviderContract

    kit_checks = [name for name in dir(ProviderContract) if name.startswith("test_")]
    assert f"{len(kit_checks) + 1} passed" in result.stdout
