"""The top navigation, by role."""
from flask_login import current_user

MEMBER_LINKS = [("settings.index", "Settings"),
                ("servers.index", "Servers"), ("auth.account", "Account"), ("account.api_keys_page", "API keys"),
                ("audit.index", "Audit")]
ADMIN_LINKS = [("admin.plugins", "Plugins"), ("members.index", "Members")]


def nav_links():
    links = list(MEMBER_LINKS)
    if current_user.is_authenticated and current_user.is_admin:
        links += ADMIN_LINKS
    return links


def init_app(app):
    app.jinja_env.globals["nav_links"] = nav_links
