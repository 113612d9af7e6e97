"""The plugin host: finds providers through entry points and says which failed and why.

Installed is not enabled: the registry only knows what is installed and whether it honours the
contract. Whether a team has enabled a provider and entered its credentials is in
``portal.providers.settings``. A plugin that fails to import, repeats a name, is not an
``OAuthProvider`` or targets another contract version is listed in ``failed`` and skipped; it
never takes the portal down.
"""
import logging
from dataclasses import dataclass
from importlib.metadata import entry_points

from portal.providers.base import CONTRACT_VERSION, OAuthProvider, contract_problems

GROUP = "portal.providers"
log = logging.getLogger("portal.providers")


@dataclass
class PluginRecord:
    """One entry point as the host saw it: the provider, or the reason it was refused."""

    entry_point: str
    distribution: str | None
    version: str | None
    name: str | None = None
    title: str | None = None
    provider: OAuthProvider | None = None
    failure: str | None = None


class ProviderRegistry:
    def __init__(self):
        self.records: list[PluginRecord] = []
        self.active: dict[str, OAuthProvider] = {}

    @classmethod
    def init_app(cls, app):
        registry = cls()
        registry.load(entry_points(group=GROUP))
        for provider in app.config.get("EXTRA_PROVIDERS", ()):  # tests and embedding apps
            registry.add(provider, entry_point=f"config:{type(provider).__name__}")
        app.extensions["portal.providers"] = registry
        return registry

    @property
    def failed(self):
        return [record for record in self.records if record.failure]

    def load(self, eps):
        # A stable order (entry-point name, then distribution) so "first one wins" on a duplicate
        # name does not depend on the order of sys.path.
        for ep in sorted(eps, key=lambda e: (e.name, _dist_name(e), e.value)):
            dist = getattr(ep, "dist", None)
            record = PluginRecord(entry_point=f"{ep.name} = {ep.value}",
                                  distribution=dist.name if dist else None, version=dist.version if dist else None)
            try:
                loaded = ep.load()
            except Exception as error:  # any import-time failure of a third-party plugin
                self._refuse(record, f"import error: {type(error).__name__}: {error}")
                continue
            self._accept(record, loaded)

    def add(self, provider, entry_point="builtin", distribution=None, version=None):
        """Register an already-built provider instance (or class)."""
        self._accept(PluginRecord(entry_point, distribution, version), provider)

    def _accept(self, record, loaded):
        if isinstance(loaded, type):
            if not issubclass(loaded, OAuthProvider):
                return self._refuse(record, f"wrong type: {loaded.__name__} is not an OAuthProvider subclass")
            try:
                loaded = loaded()
            except Exception as error:
                return self._refuse(record, f"import error: cannot instantiate: {type(error).__name__}: {error}")
        if not isinstance(loaded, OAuthProvider):
            return self._refuse(record, f"wrong type: {type(loaded).__name__} is not an OAuthProvider")
        record.name, record.title, record.provider = loaded.name or None, loaded.title or None, loaded
        if loaded.contract_version != CONTRACT_VERSION:
            return self._refuse(record, f"incompatible version: plugin targets contract "
                                        f"{loaded.contract_version}, portal provides {CONTRACT_VERSION}")
        try:
            problems = contract_problems(loaded)
        except Exception as error:  # a plugin property or setting_specs() that raises
            problems = [f"wrong type: checking the contract raised {type(error).__name__}: {error}"]
        if problems:
            return self._refuse(record, "; ".join(problems))
        if loaded.name in self.active:
            return self._refuse(record, f"duplicate name: {loaded.name!r} is already provided")
        self.active[loaded.name] = loaded
        self.records.append(record)

    def _refuse(self, record, reason):
        record.provider, record.failure = None, reason
        self.records.append(record)
        log.warning("provider plugin %s skipped: %s", record.entry_point, reason)

    def get(self, name):
        return self.active.get(name)

    def detect(self, url, names=None):
        """Providers (among ``names`` if given) whose ``detect(url)`` is true, in name order."""
        found = []
        for name in sorted(self.active):
            if names is not None and name not in names:
                continue
            try:
                if self.active[name].detect(url):
                    found.append(self.active[name])
            except Exception:
                log.warning("provider %s: detect() raised; treated as no match", name, exc_info=True)
        return found


def _dist_name(ep):
    dist = getattr(ep, "dist", None)
    return dist.name if dist else ""


def registry(app=None):
    from flask import current_app

    return (app or current_app).extensions["portal.providers"]
