"""``flask portal plugins``: the installed provider plugins, as the admin Plugins page shows them."""
import json
from dataclasses import asdict

import click
from sqlalchemy import select

from portal.cli import portal_cli
from portal.extensions import db
from portal.models import Team
from portal.providers.settings import provider_states


@portal_cli.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option("--team", "team_id", type=int, help="Team id (default: the first team).")
def plugins(as_json, team_id):
    """List installed provider plugins: active or failed (with the reason), enabled, configured."""
    if team_id is None:
        team_id = db.session.scalar(select(Team.id).order_by(Team.id).limit(1))
    elif db.session.get(Team, team_id) is None:
        raise click.BadParameter(f"there is no team {team_id}", param_hint="--team")
    states = provider_states(team_id)
    if as_json:
        click.echo(json.dumps({"team_id": team_id, "plugins": [asdict(state) for state in states]}, indent=2))
        return
    click.echo(f"team: {team_id if team_id is not None else '(none: installed plugins only)'}")
    for state in states:
        click.echo(_line(state))


def _line(state):
    origin = f"{state.distribution or '-'} {state.version or ''}".strip()
    if state.failure:
        return f"{state.name:<16} FAILED   {origin} [{state.entry_point}]: {state.failure}"
    flags = ["enabled" if state.enabled else "disabled",
             "configured" if state.configured else "not configured"]
    if state.source:
        flags.append(f"credentials from {state.source}")
    if state.problem:
        flags.append(state.problem)
    return f"{state.name:<16} active   {origin}: {', '.join(flags)}"
