"""Sign in, sign out, and the signed-in user's own account."""
from flask import Blueprint, flash, redirect, render_template, request, session, url_for
from flask_login import current_user, login_required, login_user, logout_user

from portal import accounts, audit, ratelimit
from portal.extensions import db
from portal.web.safety import safe_next

bp = Blueprint("auth", __name__)


@bp.route("/login", methods=["GET", "POST"])
@ratelimit.limit_login
def login():
    """Sign in; the same answer for an unknown user and a wrong password."""
    if request.method == "GET":
        return render_template("auth/login.html", next=safe_next(request.args.get("next")))
    email = request.form.get("email", "")
    user = accounts.authenticate(email, request.form.get("password", ""))
    if user is None:
        audit.record(audit.Action.AUTH_LOGIN_FAILED, actor_name=accounts.normalise_email(email)[:254] or None,
                     outcome="failure")
        db.session.commit()
        flash("Wrong e-mail or password.", "error")
        return render_template("auth/login.html", next=safe_next(request.form.get("next")), email=email), 401
    audit.record(audit.Action.AUTH_LOGIN, actor=user, target=user)
    db.session.commit()  # fail closed: no session is issued unless the sign-in and its event committed
    session.clear()  # no fixation: a fresh session at every sign-in
    login_user(user)
    return redirect(safe_next(request.form.get("next")), code=303)


@bp.post("/logout")
@login_required
def logout():
    audit.record(audit.Action.AUTH_LOGOUT, target=current_user)
    db.session.commit()
    logout_user()
    session.clear()
    flash("You are signed out.", "info")
    return redirect(url_for("auth.login"), code=303)


@bp.get("/account")
@login_required
def account():
    return render_template("auth/account.html")
