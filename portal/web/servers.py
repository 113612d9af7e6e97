"""MCP server pages: list and add, live provider detection, details, rename, delete, test.

Plain forms work without JavaScript; HTMX adds the live detection (a GET fragment while the
URL is typed), the "Test connection" result in place and a confirm before deleting.
"""
from flask import Blueprint, flash, g, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from jinja2_fragments.flask import render_block

from portal import servers
from portal.errors import PortalError
from portal.extensions import db
from portal.mcp import calls
from portal.providers.registry import registry

bp = Blueprint("servers", __name__, url_prefix="/servers")
INDEX, DETAIL = "servers/index.html", "servers/detail.html"


@bp.before_request
@login_required
def require_login():
    g.vary_hx = True


def _index_page(status=200, form=None, error=None):
    return render_template(INDEX, servers=servers.visible_servers(current_user), form=form or {}, error=error,
                           providers=servers.usable_providers(current_user.team_id), installed=registry().active,
                           detection=None), status


@bp.get("")
def index():
    """The servers the user can see, and the form to add one."""
    return _index_page()


@bp.post("")
def create():
    """Add a server from the form; on a mistake the form comes back with what was typed."""
    form = {key: request.form.get(key, "") for key in ("name", "url", "provider", "visibility")}
    try:
        server = servers.create_server(current_user, name=form["name"], url=form["url"],
                                       provider=form["provider"] or servers.AUTO,
                                       visibility=form["visibility"] or "personal")
    except PortalError as error:
        db.session.rollback()
        return _index_page(error.status, form, error)
    db.session.commit()
    flash(f"{server.name} added{_provider_note(server)}.", "success")
    return redirect(url_for("servers.detail", server_id=server.id), code=303)


def _provider_note(server):
    provider = registry().get(server.provider) if server.provider else None
    return f" with {provider.title}" if provider else " (no provider plugin: it must follow the MCP authorization spec)"


@bp.get("/detect")
def detect():
    """The live "Gmail detected" line for the URL being typed (changes nothing)."""
    url = request.args.get("url", "")
    detection = servers.detect(url, current_user.team_id) if url.strip() else None
    return render_block(INDEX, "detection", detection=detection)


def _detail_page(server, status=200, error=None, tools=None, tools_error=None):
    return render_template(DETAIL, server=server, can_change=servers.can_change(current_user, server),
                           providers=servers.usable_providers(current_user.team_id), installed=registry().active,
                           error=error, tools=tools, tools_error=tools_error), status


@bp.get("/<int:server_id>")
def detail(server_id):
    return _detail_page(servers.get_server(current_user, server_id))


@bp.post("/<int:server_id>")
def update(server_id):
    """Rename, re-detect or choose the provider, share or unshare."""
    server = servers.get_server(current_user, server_id)
    changes = {"name": request.form.get("name", "")}
    provider = request.form.get("provider", "")
    if provider != (server.provider or ""):
        changes["provider"] = provider or servers.AUTO
    if "visibility" in request.form:
        changes["visibility"] = request.form["visibility"]
    try:
        servers.update_server(current_user, server, changes)
    except PortalError as error:
        db.session.rollback()
        return _detail_page(servers.get_server(current_user, server_id), error.status, error)
    db.session.commit()
    flash("Saved.", "success")
    return redirect(url_for("servers.detail", server_id=server_id), code=303)


@bp.post("/<int:server_id>/delete")
def delete(server_id):
    server = servers.get_server(current_user, server_id)
    name = server.name
    servers.delete_server(current_user, server)
    db.session.commit()
    flash(f"{name} removed.", "success")
    if request.headers.get("HX-Request"):
        return "", 204, {"HX-Redirect": url_for("servers.index")}
    return redirect(url_for("servers.index"), code=303)


@bp.post("/<int:server_id>/test")
def test_connection(server_id):
    """List the server's tools with the user's token: the fragment for HTMX, else the page."""
    server = servers.get_server(current_user, server_id)
    try:
        tools, problem, status = calls.server_tools(current_user, server), None, 200
    except PortalError as error:
        tools, problem, status = None, error, error.status
    server = servers.get_server(current_user, server_id)  # the call ended the transaction
    if request.headers.get("HX-Request"):
        return render_block(DETAIL, "tools", server=server, tools=tools, tools_error=problem)
    return _detail_page(server, status, tools=tools, tools_error=problem)
