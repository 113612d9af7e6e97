"""Per-team provider state: the one place that decides whether a provider is usable for a team.

Usable means installed (the registry accepted it), enabled by the team's admin, and configured
(client id and secret, each from the environment or from the admin page). The environment wins:
credentials it provides are read-only on the page. The client secret is sealed with the row's
context, so a copy in another team's row does not open. Callers commit; every change is audited.
"""
import logging
import os
from dataclasses import dataclass, field

from flask import current_app
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from portal import audit, crypto
from portal.errors import BadInput, Conflict, NotFound, PortalError
from portal.extensions import db
from portal.models import ProviderSetting, Team
from portal.providers.registry import registry

log = logging.getLogger("portal.providers")
MAX_CLIENT_ID = 512
MAX_CLIENT_SECRET = 2048


class ProviderNotConfigured(PortalError):
    status = 400
    code = "provider_not_configured"

    def __init__(self, provider, next_step=None, message="OAuth provider not configured"):
        super().__init__(message, next_step or _how_to_configure(provider),
                         provider=getattr(provider, "name", provider))


class CredentialsUnreadable(ProviderNotConfigured):
    """The stored client secret does not open for this row (copied from elsewhere, or key lost)."""

    code = "provider_credentials_unreadable"


@dataclass(frozen=True)
class Credentials:
    client_id: str
    client_secret: str = field(repr=False)


@dataclass(frozen=True)
class ProviderState:
    """What the admin page and ``flask portal plugins`` show for one installed plugin."""

    name: str
    title: str | None
    icon: str | None
    distribution: str | None
    version: str | None
    enabled: bool = False
    client_id: str | None = None
    secret_set: bool = False
    source: str | None = None  # "environment" | "admin" | None
    configured: bool = False
    failure: str | None = None
    entry_point: str | None = None  # "name = module:attr" as the distribution declares it
    env: tuple = ()  # the environment variables the provider reads
    problem: str | None = None  # why a configured-looking provider still cannot be used

def _how_to_configure(provider):
    names = " / ".join(spec.env for spec in provider.setting_specs()) if hasattr(provider, "setting_specs") else ""
    where = f" (or the operator sets {names})" if names else ""
    return f"An admin enables {getattr(provider, 'title', provider)} and enters its client ID and secret on the Plugins page{where}."


def _environment(provider):
    """``{key: value}`` for the settings the environment (or app config) provides."""
    found = {}
    for spec in provider.setting_specs():
        value = current_app.config.get(spec.env) or os.environ.get(spec.env)
        if value:
            found[spec.key] = value
    return found


def _row(team_id, name):
    if team_id is None:
        return None
    return db.session.scalar(select(ProviderSetting).where(
        ProviderSetting.team_id == team_id, ProviderSetting.provider == name))


def _state(record, row):
    provider = record.provider
    # A failed plugin is named by its entry point: the name it claims may be another's (duplicate).
    name = record.name if provider else record.entry_point.split("=")[0].strip()
    base = dict(name=name, title=record.title, distribution=record.distribution, version=record.version,
                icon=getattr(provider, "icon", None), entry_point=record.entry_point)
    if provider is None:
        return ProviderState(**base, failure=record.failure)
    env = _environment(provider)
    client_id = env.get("client_id") or (row.client_id if row else None)
    secret_set = bool(env.get("client_secret") or (row and row.client_secret))
    source = "environment" if env else ("admin" if row and (row.client_id or row.client_secret) else None)
    problem = None
    if not env.get("client_secret") and row and row.client_secret:
        problem = _unreadable_problem(row)
    return ProviderState(**base, enabled=bool(row and row.enabled), client_id=client_id, secret_set=secret_set,
                         source=source, configured=bool(client_id and secret_set and not problem),
                         env=tuple(spec.env for spec in provider.setting_specs()), problem=problem)


def _unreadable_problem(row):
    try:
        crypto.open_field(row, "client_secret")
    except crypto.SealError:
        return "The stored client secret cannot be read; enter it again."
    return None


def provider_states(team_id=None):
    """Every installed plugin (failed ones too) with the team's state; ``team_id=None`` gives
    installed-only facts (nothing enabled, environment credentials still shown)."""
    rows = {}
    if team_id is not None:
        rows = {row.provider: row for row in db.session.scalars(
            select(ProviderSetting).where(ProviderSetting.team_id == team_id))}
    records = registry().records
    ordered = sorted(records, key=lambda r: (r.failure is not None, r.name or r.entry_point))
    return [_state(record, rows.get(record.name) if record.provider else None) for record in ordered]


def provider_state(team_id, name):
    """The state of one installed, loaded provider; NotFound otherwise."""
    for state in provider_states(team_id):
        if state.name == name and state.failure is None:
            return state
    raise NotFound("There is no installed provider by that name.", "Check the Plugins page for installed providers.")


def usable_providers(team_id):
    """``{name: provider}`` for the providers this team can connect with right now."""
    active = registry().active
    return {state.name: active[state.name] for state in provider_states(team_id)
            if state.failure is None and state.enabled and state.configured}


def credentials(team_id, name):
    """The client credentials for ``name`` in this team; ProviderNotConfigured if not usable."""
    provider = registry().get(name)
    if provider is None:
        raise ProviderNotConfigured(name, "Ask an admin to install and enable this provider.")
    row = _row(team_id, name)
    if row is None or not row.enabled:
        raise ProviderNotConfigured(provider)
    env = _environment(provider)
    client_id = env.get("client_id") or row.client_id
    try:
        client_secret = env.get("client_secret") or crypto.open_field(row, "client_secret")
    except crypto.SealError:
        log.warning("provider %s: the client secret of team %s does not open for its row", name, team_id)
        raise CredentialsUnreadable(provider, "An admin enters the client secret again on the Plugins page.",
                                    message=f"The stored client secret for {provider.title} cannot be read") from None
    if not client_id or not client_secret:
        raise ProviderNotConfigured(provider)
    return Credentials(client_id, client_secret)


def _team_and_provider(team_id, name):
    if team_id is None or db.session.get(Team, team_id) is None:
        raise NotFound("There is no such team.")
    provider = registry().get(name)
    if provider is None:
        raise NotFound("There is no installed provider by that name.", "Check the Plugins page for installed providers.")
    return provider


def _row_for_update(team_id, name):
    row = _row(team_id, name)
    if row is None:
        try:
            with db.session.begin_nested():  # two admins saving at once: the second re-reads
                row = ProviderSetting(team_id=team_id, provider=name, enabled=False, version=1)
                db.session.add(row)
            return row
        except IntegrityError:
            row = _row(team_id, name)
    row.version += 1
    return row


def _audit(action, provider, team_id, actor, details=None):
    audit.record(action, actor=actor, actor_name=None if actor else "system", team_id=team_id,
                 target_type="provider", target_id=provider.name, target_label=provider.title,
                 provider=provider.name, details=details)


def set_enabled(team_id, name, enabled, actor=None):
    """Enable or disable ``name`` for the team (audited; the caller commits). Returns the state."""
    provider = _team_and_provider(team_id, name)
    row = _row_for_update(team_id, name)
    if bool(row.enabled) != bool(enabled):
        row.enabled = bool(enabled)
        db.session.flush()
        action = audit.Action.PROVIDER_ENABLED if enabled else audit.Action.PROVIDER_DISABLED
        _audit(action, provider, team_id, actor)
    db.session.flush()
    return provider_state(team_id, name)


def set_credentials(team_id, name, client_id, client_secret, actor=None):
    """Store the team's client id and (sealed) secret; an empty secret keeps the stored one.

    Refused with Conflict when the environment provides the credentials. Audited with the
    client id and a fingerprint of a new secret, never the secret. The caller commits.
    """
    provider = _team_and_provider(team_id, name)
    env = _environment(provider)
    if env:
        raise Conflict(f"The credentials for {provider.title} are set by the environment.",
                       "Change " + " / ".join(spec.env for spec in provider.setting_specs())
                       + " where the portal runs, or unset them to manage the credentials here.")
    client_id, client_secret = _clean(client_id, "client ID", MAX_CLIENT_ID), _clean(client_secret, "client secret", MAX_CLIENT_SECRET)
    if not client_id:
        raise BadInput("Enter the client ID.", f"Copy it from {provider.title}'s developer console.")
    row = _row_for_update(team_id, name)
    if not client_secret and not row.client_secret:
        raise BadInput("Enter the client secret.", f"Copy it from {provider.title}'s developer console.")
    details = {"client_id": client_id}
    row.client_id = client_id
    if client_secret:
        db.session.flush()  # the row needs its team and provider before sealing names it
        crypto.seal_field(row, "client_secret", client_secret)
        details["client_secret_fingerprint"] = audit.fingerprint(client_secret)
    db.session.flush()
    _audit(audit.Action.PROVIDER_CREDENTIALS_CHANGED, provider, team_id, actor, details)
    return provider_state(team_id, name)


def _clean(value, label, limit):
    if value is not None and not isinstance(value, str):
        raise BadInput(f"The {label} must be text.")
    value = (value or "").strip()
    if len(value) > limit:
        raise BadInput(f"The {label} is too long (at most {limit} characters).")
    if any(ord(char) < 32 or ord(char) == 127 for char in value):
        raise BadInput(f"The {label} contains control characters.")
    return value
