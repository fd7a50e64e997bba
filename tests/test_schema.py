from django.core.management import call_command


def test_the_openapi_schema_generates_and_validates_without_warnings(tmp_path, db):
    target = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(target))
    text = target.read_text()
    assert "openapi: 3" in text
    assert "/account/v2/workspace/" in text


def test_swagger_ui_and_schema_are_served(client, db):
    assert client.get("/api/docs/").status_code == 200
    response = client.get("/api/schema/")
    assert response.status_code == 200
    assert b"/account/v2/user/" in response.content


def test_a_name_of_whitespace_only_is_refused_by_the_schema_as_by_the_server(client, db, tmp_path):
    """The schema's "not blank" pattern takes exactly the strings ``str.strip()`` keeps, and spells
    its characters out: an ECMA-262 ``\\S`` (what a schema's pattern means) takes U+001E, which
    Python strips, so a name of it was schema-valid and a 400."""
    import re
    import sys

    import yaml
    from django.contrib.auth import get_user_model

    from apps.core.schema import NOT_BLANK

    target = tmp_path / "schema.yaml"
    call_command("spectacular", "--file", str(target))
    schema = yaml.safe_load(target.read_text())
    workspace = schema["components"]["schemas"]["WorkspaceInputRequest"]["properties"]["name"]
    assert workspace["pattern"] == NOT_BLANK
    assert not re.search(r"\\[sSwWdD]", NOT_BLANK)  # no class whose meaning differs between dialects
    pattern = re.compile(NOT_BLANK)
    for code in range(sys.maxunicode + 1):
        char = chr(code)
        assert bool(pattern.search(char)) == bool(char.strip()), hex(code)

    user = get_user_model().objects.create_user("blank", "blank@example.com", "pw-blank-1")
    client.force_login(user)
    for name in ("\x1e", " \x1c\x85\u3000 ", "\t"):
        response = client.post("/account/v2/workspace/", {"name": name}, content_type="application/json")
        assert response.status_code == 400 and not pattern.search(name)
    named = client.post("/account/v2/workspace/", {"name": "\x1ea"}, content_type="application/json")
    assert named.status_code == 201 and named.json()["name"] == "a"
