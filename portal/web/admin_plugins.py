"""Admin Plugins page: installed providers, enable/disable, client credentials.

Routes live on the admin blueprint (admin-only, 404 for others); ``add_routes(bp)`` is called
once when ``portal.web.admin`` is imported. Plain form posts redirect back to the page; HTMX
posts get the provider's table row re-rendered from the page's ``plugin_row`` block.
"""
from flask import flash, g, redirect, render_template, request, url_for
from flask_login import current_user
from jinja2_fragments.flask import render_block

from portal.errors import BadInput
from portal.extensions import db
from portal.providers import settings

TEMPLATE = "admin/plugins.html"


def plugins():
    """The table of every installed plugin and this team's state for it."""
    g.vary_hx = True
    return render_template(TEMPLATE, states=settings.provider_states(current_user.team_id))


def plugin_enabled(name):
    """Enable or disable one provider for the team."""
    enabled = _flag(request.form.get("enabled"))
    state = settings.set_enabled(current_user.team_id, name, enabled, actor=current_user)
    db.session.commit()
    return _answer(state, f"{state.title} is {'enabled' if enabled else 'disabled'}.")


def plugin_credentials(name):
    """Store the team's client id and secret (an empty secret keeps the stored one)."""
    state = settings.set_credentials(current_user.team_id, name, request.form.get("client_id"),
                                     request.form.get("client_secret"), actor=current_user)
    db.session.commit()
    return _answer(state, f"The credentials for {state.title} are saved.")


def _flag(value):
    if value in ("1", "true", "on"):
        return True
    if value in ("0", "false", "off"):
        return False
    raise BadInput("Say whether to enable or disable the provider.", "Send enabled=1 or enabled=0.")


def _answer(state, message):
    g.vary_hx = True
    if request.headers.get("HX-Request"):
        return render_block(TEMPLATE, "plugin_row", state=state, message=message)
    flash(message, "success")
    return redirect(url_for("admin.plugins"), code=303)


def add_routes(bp):
    bp.add_url_rule("/plugins", "plugins", plugins, methods=["GET"])
    bp.add_url_rule("/plugins/<name>/enabled", "plugin_enabled", plugin_enabled, methods=["POST"])
    bp.add_url_rule("/plugins/<name>/credentials", "plugin_credentials", plugin_credentials, methods=["POST"])
