"""Team administration: members, invitations, provider plugins."""
from flask import Blueprint, abort, render_template
from flask_login import current_user, login_required

from portal.web import admin_plugins

bp = Blueprint("admin", __name__, url_prefix="/admin")


@bp.before_request
@login_required
def require_admin():
    if not current_user.is_admin:
        abort(404)


admin_plugins.add_routes(bp)
