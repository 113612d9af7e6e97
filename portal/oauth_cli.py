"""``flask portal refresh-due``: proactive refresh and revocation retries, for cron on any host."""
import json

import click

from portal.cli import portal_cli


@portal_cli.command("refresh-due")
@click.option("--within", default=600, show_default=True, type=click.IntRange(0, 7 * 24 * 3600),
              help="Refresh tokens that expire within this many seconds.")
@click.option("--json", "as_json", is_flag=True, help="Print the counts as JSON.")
def refresh_due(within, as_json):
    """Refresh connections expiring soon, retry pending revocations, drop old flow states.

    Safe to run on several hosts at once: each connection is handled under its row lock.
    """
    from portal.oauth import jobs

    report = jobs.refresh_due(within=within).as_dict()
    if as_json:
        click.echo(json.dumps(report, sort_keys=True))
        return
    click.echo(", ".join(f"{name.replace('_', ' ')}: {count}" for name, count in report.items()))
