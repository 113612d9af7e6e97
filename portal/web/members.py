"""Admin Members page: the team's members (role, enable/disable) and invitations.

Admin-only like the admin blueprint (404 for others). Plain form posts redirect back to the
page; HTMX posts get the changed block of ``admin/members.html`` re-rendered. A new invite
link is shown once, in the response to its creation, and never stored in the session.
"""
from flask import Blueprint, current_app, flash, g, redirect, render_template, request, url_for
from flask_login import current_user
from jinja2_fragments.flask import render_block

from portal import accounts, invites
from portal.extensions import db
from portal.web.admin import require_admin

TEMPLATE = "admin/members.html"
bp = Blueprint("members", __name__, url_prefix="/admin/members")
bp.before_request(require_admin)


def _context(**extra):
    team_id = current_user.team_id
    return {"members": accounts.team_members(team_id), "pending": invites.pending(team_id),
            "roles": ("member", "admin"), **extra}


def _answer(block, message):
    """HTMX: the changed block; otherwise back to the page with a flash message."""
    g.vary_hx = True
    if not current_user.is_admin or current_user.disabled:  # the admin changed their own account
        return _leave()
    if request.headers.get("HX-Request"):
        return render_block(TEMPLATE, block, **_context(message=message))
    flash(message, "success")
    return redirect(url_for("members.index"), code=303)


def _leave():
    target = url_for("home.index")
    if request.headers.get("HX-Request"):
        return "", 204, {"HX-Redirect": target}
    return redirect(target, code=303)


@bp.get("")
def index():
    g.vary_hx = True
    return render_template(TEMPLATE, **_context())


@bp.post("/invites")
def invite():
    """Create an invitation; the response shows its link, once."""
    ttl = current_app.config.get("INVITE_TTL_HOURS") or invites.DEFAULT_TTL_HOURS
    created, token = invites.create(current_user, request.form.get("email"), request.form.get("role", "member"), ttl)
    db.session.commit()
    g.no_store = g.vary_hx = True
    link = current_app.config["FRONTEND_URL"].rstrip("/") + url_for("auth.invite", token=token)
    context = _context(invite_link=link, invited=created)
    if request.headers.get("HX-Request"):
        return render_block(TEMPLATE, "invites", **context)
    return render_template(TEMPLATE, **context)


@bp.post("/invites/<int:invite_id>/revoke")
def revoke_invite(invite_id):
    revoked = invites.revoke(current_user, invite_id)
    db.session.commit()
    return _answer("invites", f"The invitation for {revoked.email} is revoked.")


@bp.post("/<int:user_id>/role")
def change_role(user_id):
    user = accounts.set_role(current_user, user_id, request.form.get("role"))
    db.session.commit()
    return _answer("member_list", f"{user.email} is now {'an admin' if user.is_admin else 'a member'}.")


@bp.post("/<int:user_id>/disable")
def disable(user_id):
    user = accounts.set_disabled(current_user, user_id, True)
    db.session.commit()
    return _answer("member_list", f"{user.email} is disabled and signed out everywhere.")


@bp.post("/<int:user_id>/enable")
def enable(user_id):
    user = accounts.set_disabled(current_user, user_id, False)
    db.session.commit()
    return _answer("member_list", f"{user.email} is enabled.")
