"""Blueprints: thin views over the services in portal/."""


def register_blueprints(app):
    from portal.web import admin, api, audit, auth, home, navigation, servers

    navigation.init_app(app)

    for module in (auth, home, admin, servers, api, audit):
        app.register_blueprint(module.bp)
