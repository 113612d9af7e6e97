"""Sign in and out, the signed-in user's account (password, log out everywhere), joining by invite."""
from flask import Blueprint, current_app, flash, g, redirect, render_template, request, session, url_for
from flask_login import current_user, login_required, login_user, logout_user

from portal import accounts, audit, invites, ratelimit
from portal.errors import BadInput
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
        shown = accounts.normalise_email(email)
        audit.record(audit.Action.AUTH_LOGIN_FAILED, outcome="failure",
                     actor_name=shown if accounts.is_valid_email(shown) else None)
        db.session.commit()
        flash("Wrong e-mail or password.", "error")
        return render_template("auth/login.html", next=safe_next(request.form.get("next")), email=email), 401
    audit.record(audit.Action.AUTH_LOGIN, actor=user, target=user)
    db.session.commit()  # fail closed: no session is issued unless the sign-in and its event committed
    sign_in(user, remember=request.form.get("remember") == "on")
    return redirect(safe_next(request.form.get("next")), code=303)


def sign_in(user, remember=False):
    """A fresh session for ``user``: nothing from before survives (no session fixation)."""
    session.clear()
    login_user(user, remember=remember)


@bp.post("/logout")
@login_required
def logout():
    audit.record(audit.Action.AUTH_LOGOUT, target=current_user)
    db.session.commit()
    session.clear()
    logout_user()  # after clear(): it leaves the instruction to delete the remember cookie
    flash("You are signed out.", "info")
    return redirect(url_for("auth.login"), code=303)


@bp.get("/account")
@login_required
def account():
    return render_template("auth/account.html", min_length=accounts.MIN_PASSWORD_LENGTH)


@bp.post("/account/password")
@login_required
def change_password():
    """New password: every other session ends, this one continues on the new session version."""
    user = current_user._get_current_object()
    try:
        if request.form.get("new_password") != request.form.get("confirm_password"):
            raise BadInput("The new password and its confirmation differ.")
        accounts.change_password(user, request.form.get("current_password"), request.form.get("new_password"))
    except BadInput as error:
        db.session.rollback()
        return render_template("auth/account.html", min_length=accounts.MIN_PASSWORD_LENGTH,
                               password_error=error.message), 400
    db.session.commit()
    sign_in(user, remember=current_app.config["REMEMBER_COOKIE_NAME"] in request.cookies)
    flash("Your password is changed; every other session is signed out.", "success")
    return redirect(url_for("auth.account"), code=303)


@bp.post("/account/logout-everywhere")
@login_required
def logout_everywhere():
    accounts.logout_everywhere(current_user._get_current_object())
    db.session.commit()
    session.clear()
    logout_user()
    flash("You are signed out on every device.", "info")
    return redirect(url_for("auth.login"), code=303)


@bp.route("/invite/<token>", methods=["GET", "POST"])
@ratelimit.limit_invite
def invite(token):
    """Join a team: the invite link's form (GET) and its acceptance (POST)."""
    g.no_store = True
    invite = invites.find_usable(token)
    if request.method == "GET":
        return _invite_page(invite, token)
    try:
        if request.form.get("password") != request.form.get("confirm_password"):
            raise BadInput("The password and its confirmation differ.")
        user = invites.accept(token, request.form.get("name"), request.form.get("password"))
    except BadInput as error:
        db.session.rollback()
        return _invite_page(invite, token, error=error.message, name=request.form.get("name", "")), 400
    db.session.commit()
    sign_in(user)
    flash(f"Welcome to {user.team.name}, {user.name}.", "success")
    return redirect(url_for("home.index"), code=303)


def _invite_page(invite, token, **context):
    response = current_app.make_response(render_template(
        "auth/invite.html", invite=invite, token=token, min_length=accounts.MIN_PASSWORD_LENGTH, **context))
    response.headers["Referrer-Policy"] = "no-referrer"
    return response
