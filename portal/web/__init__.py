"""Blueprints: thin views over the services in portal/."""


def register_blueprints(app):
    from portal.web import admin, api, audit, auth, home, navigation, servers
    from portal.web import oauth, settings

    navigation.init_app(app)

    for module in (auth, home, admin, servers, api, audit, oauth, settings):
        app.register_blueprint(module.bp)
