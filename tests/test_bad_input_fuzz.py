"""SECURITY 31: arbitrary input to the JSON API gets a 2xx or a 4xx with a JSON error, never a 5xx.

Hypothesis sends wrong types, nested objects, huge and invalid strings (lone surrogates,
control characters), bad URLs, unknown ids and raw bodies to /api/servers and the tool-call
route. The tool call's token provider says "connect first", so no example leaves the process.
"""
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from portal.extensions import db
from portal.mcp.errors import ConnectionRequired
from tests.conftest import PASSWORD
from tests.test_servers import make_server

FUZZ = settings(max_examples=120, deadline=None, database=None, derandomize=False,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

surrogates = st.text(alphabet=st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), min_size=1, max_size=3)
huge = st.builds(lambda char, n: char * n, st.characters(), st.integers(3_000, 300_000))
texts = st.one_of(st.text(max_size=40), surrogates, huge, st.text(alphabet=st.characters(max_codepoint=31), max_size=5))
urls = st.one_of(
    texts,
    st.sampled_from(["https://mcp.example.test/mcp", "http://127.0.0.1:1/mcp", "https://u:p@h.test/", "ftp://h/x",
                     "https:///mcp", "https://[::1/", "https://h.test:99999/", "javascript:alert(1)", "//h.test/x",
                     "https://h.test/#x", "HTTPS://H.TEST/MCP", "https://xn--/", "http://%zz/"]),
    st.builds(lambda scheme, host, path: f"{scheme}://{host}/{path}",
              st.sampled_from(["http", "https", "HTTP", "file", ""]), texts, texts),
)
leaves = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), texts)
json_values = st.recursive(leaves, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=8)
field = st.one_of(json_values, urls, st.sampled_from(["auto", "gmail", "personal", "team", "", None]))
fields = st.fixed_dictionaries({}, optional={"name": field, "url": urls | field, "provider": field,
                                             "visibility": field})
payloads = st.one_of(fields, st.dictionaries(st.text(max_size=12), json_values, max_size=4), json_values)
raw_bodies = st.one_of(st.binary(max_size=200), st.sampled_from([b"{", b"[" * 5000 + b"]" * 5000, b"\xff\xfe",
                                                                 b'{"name": "\\ud800"}', b"null", b"NaN"]))
content_types = st.sampled_from(["application/json", "text/plain", "application/x-www-form-urlencoded", ""])
ids = st.one_of(st.integers(-10, 2**80), st.text(max_size=12))


def assert_json_answer(response):
    assert response.status_code < 500, (response.status_code, response.get_data(as_text=True)[:300])
    body = response.get_json(silent=True)
    assert body is not None, response.get_data(as_text=True)[:300]
    if response.status_code >= 400:
        assert isinstance(body.get("error"), str) and isinstance(body.get("message"), str), body


class NoToken:
    def __init__(self, *args):
        pass

    def get(self):
        raise ConnectionRequired()

    def refresh(self, rejected):
        return None


@pytest.fixture
def app_config(app_config):
    app_config["MCP_TOKEN_PROVIDER"] = NoToken
    return app_config


@pytest.fixture
def api(app, admin, member, make_user):
    """A signed-in member's client with the CSRF header, and the ids of servers that exist."""
    own = make_server(member, name="Own", url="https://mcp.example.test/own")
    shared = make_server(admin, name="Shared", url="https://mcp.example.test/team", visibility="team")
    other = make_server(make_user("x@o.test", team_name="Team O"), name="Other", url="https://mcp.example.test/o")
    client = app.test_client()
    assert client.submit("/login", {"email": member.email, "password": PASSWORD}).status_code == 303
    client.environ_base["HTTP_X_CSRFTOKEN"] = client.csrf_token("/servers")
    db.session.rollback()
    return client, [own.id, shared.id, other.id]


def path_id(value):
    return quote(str(value), safe="", errors="surrogatepass")


@FUZZ
@given(payload=payloads)
@example(payload={"name": "\ud800", "url": "https://mcp.example.test/mcp"})
@example(payload={"name": "ok", "url": "https://mcp.example.test/\udfff"})
@example(payload={"name": "ok", "url": "https://mcp.example.test/mcp", "provider": "\ud800"})
def test_create_server_answers_json_for_any_payload(api, payload):
    client, _ = api
    assert_json_answer(client.post("/api/servers", json=payload))


@FUZZ
@given(payload=payloads, pick=st.integers(0, 2), server_id=ids, use_known=st.booleans())
def test_patch_server_answers_json_for_any_payload_and_id(api, payload, pick, server_id, use_known):
    client, known = api
    target = known[pick] if use_known else server_id
    assert_json_answer(client.patch(f"/api/servers/{path_id(target)}", json=payload))


@FUZZ
@given(body=raw_bodies, content_type=content_types, method=st.sampled_from(["POST", "PATCH"]))
def test_raw_bodies_answer_json(api, body, content_type, method):
    client, known = api
    path = "/api/servers" if method == "POST" else f"/api/servers/{known[0]}"
    assert_json_answer(client.open(path, method=method, data=body, content_type=content_type))


@FUZZ
@given(server_id=ids, method=st.sampled_from(["GET", "DELETE"]))
@example(server_id="/1", method="GET")
@example(server_id=2**31, method="DELETE")  # past PostgreSQL's INTEGER: must be a 404, not a DataError
def test_unknown_ids_answer_json(api, server_id, method):
    client, known = api
    if server_id in known:
        return
    response = client.open(f"/api/servers/{path_id(server_id)}", method=method)
    assert_json_answer(response)
    assert response.status_code == 404


@FUZZ
@given(name=st.one_of(st.text(max_size=40), surrogates, st.sampled_from(["echo", "a.b-c_d", "x" * 128, "x" * 129,
                                                                       "y" * 20_000, "a b", "\x00", ".."])),
       payload=payloads,
       pick=st.integers(0, 2))
@example(name="/0", payload={}, pick=0)  # "tools//0": werkzeug would answer an HTML 308 redirect
def test_tool_call_answers_json_for_any_name_and_arguments(api, name, payload, pick):
    client, known = api
    response = client.post(f"/api/servers/{known[pick]}/tools/{path_id(name)}", json=payload)
    assert_json_answer(response)
    assert response.status_code in (400, 404, 409, 413)
