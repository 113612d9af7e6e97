"""``flask portal ...``: operator commands."""
import click
from flask import current_app
from flask.cli import AppGroup

portal_cli = AppGroup("portal", help="MCP Portal operator commands.")


@portal_cli.command("check-config")
def check_config():
    """Print the settings in effect, secrets masked."""
    from portal.config import describe

    for line in describe(current_app):
        click.echo(line)


def init_app(app):
    from portal import plugins_cli  # noqa: F401  (adds `flask portal plugins` to portal_cli)
    from portal import accounts_cli  # noqa: F401  (adds create-admin, first-run, keys)
    from portal import oauth_cli  # noqa: F401  (adds refresh-due)
    from portal.audit_cli import audit_cli

    portal_cli.add_command(audit_cli)  # flask portal audit verify | prune

    app.cli.add_command(portal_cli)


def main():
    """``mcp-portal``: the same commands without typing ``flask --app wsgi``."""
    from flask.cli import FlaskGroup

    from portal import create_app

    FlaskGroup(create_app=create_app)(prog_name="mcp-portal")
