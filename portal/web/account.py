"""Personal API keys: the page (HTMX, works without JS) and a small JSON API for agent hosts.

A new key is shown once, in the response to its creation, and never stored in the session.
"""
from flask import Blueprint, flash, g, jsonify, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from jinja2_fragments.flask import render_block

from portal import api_keys
from portal.extensions import db
from portal.ratelimit import limit_api

TEMPLATE = "auth/api_keys.html"
bp = Blueprint("account", __name__)


def _page(block=None, **extra):
    g.vary_hx = True
    context = {"keys": api_keys.active(current_user), "max_keys": api_keys.MAX_ACTIVE_KEYS, **extra}
    if block and request.headers.get("HX-Request"):
        return render_block(TEMPLATE, block, **context)
    return render_template(TEMPLATE, **context)


@bp.get("/account/api-keys")
@login_required
def api_keys_page():
    return _page()


@bp.post("/account/api-keys")
@login_required
def create_api_key():
    """Create a key; the response shows it, once."""
    key, plaintext = api_keys.create(current_user, request.form.get("name"))
    db.session.commit()
    g.no_store = True
    return _page("keys", new_key=plaintext, new_key_name=key.name)


@bp.post("/account/api-keys/<int:key_id>/revoke")
@login_required
def revoke_api_key(key_id):
    key = api_keys.revoke(current_user, key_id)
    db.session.commit()
    message = f"The key {key.name} (mcpp_{key.prefix}_…) is revoked."
    if request.headers.get("HX-Request"):
        return _page("keys", message=message)
    flash(message, "success")
    return redirect(url_for("account.api_keys_page"), code=303)


@bp.get("/api/me")
@limit_api
@login_required
def me():
    """Who the caller is: lets an agent host check its key."""
    user = current_user
    return jsonify({"id": user.id, "email": user.email, "name": user.name, "role": user.role,
                    "team": {"id": user.team_id, "name": user.team.name},
                    "auth": "api_key" if g.get("api_key_id") else "session"})


@bp.get("/api/api-keys")
@limit_api
@login_required
def list_api_keys():
    return jsonify([_key_json(key) for key in api_keys.active(current_user)])


@bp.delete("/api/api-keys/<int:key_id>")
@limit_api
@login_required
def delete_api_key(key_id):
    """Revoke one of the caller's keys (an agent host may retire its own)."""
    key = api_keys.revoke(current_user, key_id)
    db.session.commit()
    return jsonify({**_key_json(key), "revoked": True})


def _key_json(key):
    return {"id": key.id, "name": key.name, "prefix": key.prefix, "created_at": _iso(key.created_at),
            "last_used_at": _iso(key.last_used_at)}


def _iso(value):
    return value.isoformat().replace("+00:00", "Z") if value else None
