"""``flask portal audit verify`` and ``flask portal audit prune --before YYYY-MM-DD``."""
import json
import sys

import click
from flask import current_app
from flask.cli import AppGroup

from portal import audit_chain
from portal.extensions import db

audit_cli = AppGroup("audit", help="Check and prune the tamper-evident audit trail.")


@audit_cli.command("verify")
def verify():
    """Walk the chain; exit 1 and name the first broken event if it does not verify."""
    report = audit_chain.verify(db.session, current_app)
    db.session.rollback()
    if report.ok:
        click.echo(f"OK: {report.message}.")
        return
    click.echo(f"BROKEN at event #{report.broken_id} ({report.kind}): {report.message}. "
               f"{report.checked} events before it verified from {report.start}.", err=True)
    sys.exit(1)


@audit_cli.command("prune")
@click.option("--before", "before", required=True, type=click.DateTime(formats=["%Y-%m-%d"]),
              help="Remove events created before this date (UTC), e.g. 2025-01-01.")
def prune(before):
    """Delete old events, keeping a verifiable chain: an anchor event records the cut."""
    try:
        anchor = audit_chain.prune(db.session, current_app, before.date())
    except audit_chain.ChainBroken as error:
        db.session.rollback()
        report = error.report
        click.echo(f"Refused: the chain is broken at event #{report.broken_id} ({report.kind}): "
                   f"{report.message}. Nothing was removed.", err=True)
        sys.exit(1)
    db.session.commit()
    if anchor is None:
        click.echo(f"Nothing to prune: no event is older than {before.date().isoformat()}.")
        return
    cut = json.loads(anchor.details)
    click.echo(f"Pruned {cut['removed']} events created before {cut['before']}; anchor event #{anchor.id} "
               f"records the cut (the kept chain starts at #{cut['first_kept_id'] or anchor.id}).")
