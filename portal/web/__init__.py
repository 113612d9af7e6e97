"""Blueprints: thin views over the services in portal/."""


def register_blueprints(app):
    from portal.web import account, admin, api, audit, auth, home, members, navigation, servers
    from portal.web import oauth, settings

    navigation.init_app(app)

    for module in (auth, home, admin, members, account, servers, api, audit, oauth, settings):
        app.register_blueprint(module.bp)
