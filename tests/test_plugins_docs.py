"""The plugin contract is documented: every public member, the refusal reasons, a working example."""
import re
from pathlib import Path

from portal.providers.base import OAuthProvider, SettingSpec

ROOT = Path(__file__).resolve().parent.parent
DOCS = (ROOT / "docs" / "plugins.md").read_text()
EXAMPLE = ROOT / "tests" / "plugin_dists" / "example"


def test_docs_mention_every_public_member_of_the_contract():
    members = [name for name in dir(OAuthProvider) if not name.startswith("_")]
    assert "detect" in members and "build_authorize_params" in members
    missing = [name for name in members if not re.search(rf"`{name}(\(|`)", DOCS)]
    assert missing == []


def test_docs_mention_every_setting_field_and_refusal_category():
    for field in SettingSpec.__dataclass_fields__:
        assert f"`{field}`" in DOCS
    for category in ("import error", "wrong type", "incompatible version", "missing setting", "duplicate name"):
        assert f"`{category}`" in DOCS


def test_docs_example_is_the_tested_example_plugin():
    blocks = re.findall(r'```\w+ title="([^"]+)"\n(.*?)```', DOCS, re.S)
    assert {path for path, _ in blocks} == {"pyproject.toml", "portal_example_provider/__init__.py",
                                            "tests/test_example_provider.py"}
    for path, code in blocks:
        assert code == (EXAMPLE / path).read_text(), path
