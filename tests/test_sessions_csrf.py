"""CSRF: every state-changing route refuses a request without the token (SECURITY 24)."""
import pytest

STATE_CHANGING = {"POST", "PUT", "PATCH", "DELETE"}


def state_changing_routes(app):
    for rule in app.url_map.iter_rules():
        for method in sorted(rule.methods & STATE_CHANGING):
            values = {name: 1 if type(converter).__name__ == "IntegerConverter" else "x"
                      for name, converter in rule._converters.items()}
            path = rule.build(values, append_unknown=False)[1]
            yield method, path, rule.endpoint


def test_every_state_changing_route_refuses_missing_csrf_token(app, client, auth, admin):
    auth.login("admin@a.test")
    routes = list(state_changing_routes(app))
    assert any(endpoint == "members.disable" for _, _, endpoint in routes)
    for method, path, endpoint in routes:
        response = client.open(path, method=method, data={"name": "x"})
        assert response.status_code == 400, (method, path, endpoint, response.status_code)
        body = response.get_data(as_text=True)
        assert "security token" in body, (method, path, endpoint)


def test_every_state_changing_route_refuses_wrong_csrf_token(app, client, auth, admin):
    auth.login("admin@a.test")
    for method, path, endpoint in state_changing_routes(app):
        response = client.open(path, method=method, data={"csrf_token": "forged"}, headers={"X-CSRFToken": "forged"})
        assert response.status_code == 400, (method, path, endpoint)


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Basic abc"}, {"Authorization": "Bearer not-a-portal-key"}])
def test_api_post_without_key_or_token_is_refused(client, headers):
    response = client.open("/api/api-keys/1", method="DELETE", headers=headers)
    assert response.status_code == 400 and response.get_json()["error"] == "csrf_failed"
