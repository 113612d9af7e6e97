"""The landing page after sign-in."""
from flask import Blueprint, redirect, url_for
from flask_login import current_user, login_required

bp = Blueprint("home", __name__)


@bp.get("/")
@login_required
def index():
    """Admins land on the team overview, members on their settings."""
    if current_user.is_admin:
        return redirect(url_for("admin.plugins"))
    return redirect(url_for("settings.index"))
