"""MCP Portal: connect MCP servers to OAuth accounts, keep tokens sealed and fresh, audit it all."""
from pathlib import Path

from flask import Flask

ROOT = Path(__file__).resolve().parent.parent


def create_app(config=None):
    """Build the portal.

    ``config`` is a mapping that overrides what the environment provides; tests pass their
    database URL and keys here. Nothing is kept at module level: the plugin registry, keyring
    and audit keys live in ``app.extensions``.
    """
    app = Flask(
        __name__,
        instance_path=str((config or {}).get("INSTANCE_PATH") or ROOT / "instance"),
        template_folder=str(ROOT / "templates"),
        static_folder="static",
    )
    from portal import config as portal_config

    portal_config.load(app, overrides=config or {})

    from portal import crypto, errors, extensions, requests, security
    from portal.providers.registry import ProviderRegistry

    extensions.init_app(app)
    crypto.init_app(app)
    security.init_app(app)
    requests.init_app(app)
    errors.init_app(app)
    ProviderRegistry.init_app(app)

    from portal import audit, cli, oauth, ratelimit
    from portal.web import register_blueprints

    audit.init_app(app)
    ratelimit.init_app(app)
    oauth.init_app(app)
    register_blueprints(app)
    cli.init_app(app)
    return app
