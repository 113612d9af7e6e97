"""``flask portal create-admin | first-run | keys ...``: accounts and encryption keys for operators.

Passwords are printed to the terminal only, never logged or audited.
"""
import secrets
import sys

import click
from flask import current_app
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from portal import accounts, audit, config, crypto, key_rotation
from portal.cli import portal_cli
from portal.errors import PortalError
from portal.extensions import db
from portal.models import User

FIRST_ADMIN_EMAIL = "admin@localhost"


def _read_password(password_stdin):
    if password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return click.prompt("Password", hide_input=True, confirmation_prompt=True)


@portal_cli.command("create-admin")
@click.option("--email", required=True, help="The admin's e-mail (an existing user is reset).")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of stdin.")
@click.option("--team", "team_name", help="Team name (default: the first team, else 'My team').")
def create_admin(email, password_stdin, team_name):
    """Create an admin, or reset an existing user's password and make them an enabled admin."""
    password = _read_password(password_stdin)
    existing = db.session.scalar(select(User).where(User.email == accounts.normalise_email(email)))
    try:
        if existing is not None:
            if team_name and existing.team.name != team_name:
                raise click.UsageError(f"{existing.email} belongs to team {existing.team.name!r}; "
                                       "--team cannot move a user.")
            user = accounts.reset_admin(existing, password)
            message = f"Reset {user.email}: new password, admin, enabled; their sessions are ended."
        else:
            user = accounts.create_admin(email, password, team_name)
            message = f"Created admin {user.email} in team {user.team.name!r}."
        db.session.commit()
    except PortalError as error:
        db.session.rollback()
        raise click.ClickException(error.message) from None
    click.echo(message)


@portal_cli.command("first-run")
@click.option("--email", default=FIRST_ADMIN_EMAIL, show_default=True, help="The first admin's e-mail.")
def first_run(email):
    """Create the first admin with a generated password, once; later runs change nothing."""
    login_url = current_app.config["FRONTEND_URL"].rstrip("/") + "/login"
    if db.session.scalar(select(func.count()).select_from(User)):
        _already_set_up(login_url)
        return
    password = secrets.token_urlsafe(18)
    try:
        user = accounts.create_admin(email, password)
        db.session.commit()
    except IntegrityError:  # another process set up at the same moment
        db.session.rollback()
        _already_set_up(login_url)
        return
    except PortalError as error:
        db.session.rollback()
        raise click.ClickException(error.message) from None
    click.echo("MCP Portal is set up. Sign in with (shown only this once):")
    click.echo(f"  URL:      {login_url}")
    click.echo(f"  E-mail:   {user.email}")
    click.echo(f"  Password: {password}")
    click.echo("Change the password on your account page after signing in.")


def _already_set_up(login_url):
    click.echo(f"MCP Portal is already set up: sign in at {login_url}")
    click.echo("Forgot the admin password? Reset it with: flask portal create-admin --email <admin e-mail>")


@portal_cli.group("keys")
def keys():
    """Encryption keys for sealed secrets: generate, rotate, status."""


@keys.command("generate")
@click.option("--id", "key_id", help="Key id (default: the next free kN).")
def generate(key_id):
    """Print a new keyring entry to put first in PORTAL_ENCRYPTION_KEYS."""
    in_use = set(crypto.keyring().keys)
    key_id = key_id or next(f"k{n}" for n in range(1, len(in_use) + 2) if f"k{n}" not in in_use)
    if not crypto.KEY_ID.match(key_id) or key_id in in_use:
        raise click.BadParameter("use 1-32 letters, digits, - or _, not an id already in the keyring", param_hint="--id")
    click.echo(config.new_keyring_entry(key_id))
    click.echo("Put it first in PORTAL_ENCRYPTION_KEYS (comma-separated, keep the old keys after it), "
               "restart, then run: flask portal keys rotate", err=True)


@keys.command("rotate")
@click.option("--batch-size", default=200, show_default=True, type=click.IntRange(1, 10000))
def rotate(batch_size):
    """Re-seal every sealed value with the primary key, online; exits 1 if some would not open."""
    keyring = crypto.keyring()
    report = key_rotation.rotate(keyring, batch_size=batch_size)
    counts = report.as_dict()
    audit.record(audit.Action.KEYS_ROTATED, actor_name="cli", outcome="failure" if report.failed else "success",
                 details={**counts, "primary_key_id": keyring.primary_id})
    db.session.commit()
    click.echo(f"primary key {keyring.primary_id}: resealed {counts['resealed']}, "
               f"retried {counts['retried']}, failed {counts['failed']}")
    for table, row_id, reason in report.failed:
        click.echo(f"  {table} #{row_id}: {reason}", err=True)
    if report.failed:
        raise click.exceptions.Exit(1)


@keys.command("status")
def status():
    """Which key ids still seal values; an old key can be dropped once nothing uses it."""
    keyring = crypto.keyring()
    usage = key_rotation.key_usage()
    click.echo(f"primary key: {keyring.primary_id} ({usage.get(keyring.primary_id, 0)} values)")
    stale = key_rotation.stale_keys_in_use(keyring)
    for key_id in stale:
        where = "" if key_id in keyring.keys else " — NOT in PORTAL_ENCRYPTION_KEYS: these values cannot be opened"
        click.echo(f"still in use: {key_id} ({usage[key_id]} values){where}")
    droppable = sorted(set(keyring.keys) - set(stale) - {keyring.primary_id})
    if droppable:
        click.echo(f"unused, can be removed from PORTAL_ENCRYPTION_KEYS: {', '.join(droppable)}")
    if stale:
        click.echo("run `flask portal keys rotate` to move every value to the primary key")
    else:
        click.echo("every sealed value uses the primary key")
