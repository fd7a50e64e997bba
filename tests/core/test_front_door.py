"""The front door: ``/`` sends a browser to the console and gives an API client the API's roots;
``/favicon.ico`` finds the console's icon."""

from __future__ import annotations

import pytest
from django.contrib.staticfiles import finders

pytestmark = pytest.mark.django_db

BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,*/*;q=0.8"


def test_a_browser_signed_out_is_sent_to_sign_in(client):
    response = client.get("/", HTTP_ACCEPT=BROWSER_ACCEPT)
    assert response.status_code == 302
    assert response["Location"] == "/console/login/"


def test_a_browser_signed_in_is_sent_to_the_task_list(client, user):
    client.force_login(user)
    response = client.get("/", HTTP_ACCEPT=BROWSER_ACCEPT)
    assert response.status_code == 302
    assert response["Location"] == "/console/tasks/"


@pytest.mark.parametrize("accept", ["application/json", "*/*", None])
def test_an_api_client_gets_the_index_of_the_apis_roots_and_docs(client, accept):
    headers = {"HTTP_ACCEPT": accept} if accept else {}
    response = client.get("/", **headers)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert body["apis"]["recognition"] == "/recognition/v2/"
    assert body["apis"]["detection"] == "/detection/v2/"
    assert body["docs"] == {"swagger_ui": "/api/docs/", "openapi_schema": "/api/schema/"}
    assert body["console"] == "/console/" and body["health"] == "/health/"


def test_every_root_the_index_names_answers(client, user):
    client.force_login(user)
    body = client.get("/", HTTP_ACCEPT="application/json").json()
    for url in [*body["docs"].values(), body["console"], body["health"]]:
        assert client.get(url).status_code in (200, 302), url
    # The API roots need a token: they answer (401 or a list), never 404.
    for url in body["apis"].values():
        assert client.get(url, HTTP_ACCEPT="application/json").status_code != 500, url


def test_the_front_door_refuses_a_write_with_405_json(client):
    response = client.post("/", {}, HTTP_ACCEPT="application/json")
    assert response.status_code == 405


def test_the_favicon_points_at_the_consoles_icon_which_exists(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 302
    assert response["Location"].endswith("console/favicon.svg")
    assert finders.find("console/favicon.svg")


def test_the_schema_does_not_describe_the_front_door(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    assert "/" not in schema["paths"] and "/favicon.ico" not in schema["paths"]
