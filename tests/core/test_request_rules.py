"""What the schema says about a request, the server holds it to (tests/test_contract.py checks the
whole API with Schemathesis; these are the rules it found, one by one)."""

from __future__ import annotations

import uuid

import pytest

from apps.core.filters import MSG_BAD_BOOLEAN, MSG_EMPTY_FILTER
from apps.core.pagination import MSG_BAD_PAGE_SIZE
from apps.workspaces.tenancy import MSG_WORKSPACE_INVALID

API = "/recognition/v2/"


@pytest.mark.parametrize("value", ["", "abc", "0", "-1", "1.5", " 5"])
def test_a_page_size_that_is_not_a_positive_whole_number_is_a_400(api, workspace, value):
    response = api.get(API + "task/", {"page_size": value})
    assert response.status_code == 400
    assert response.json() == {"page_size": [MSG_BAD_PAGE_SIZE]}


def test_a_page_size_over_100_counts_as_100(api, workspace):
    assert api.get(API + "task/", {"page_size": 1000}).status_code == 200


@pytest.mark.parametrize("path", ["task/", "label/", "model/", "training-image/"])
def test_an_empty_workspace_is_a_400_not_the_default_workspace(api, workspace, path):
    response = api.get(API + path, {"workspace": ""})
    assert response.status_code == 400
    assert response.json() == {"workspace": [MSG_WORKSPACE_INVALID]}


def test_an_empty_id_filter_is_a_400_not_every_row(api, workspace):
    response = api.get(API + "label/", {"task": ""})
    assert response.status_code == 400
    assert response.json() == {"task": [MSG_EMPTY_FILTER]}
    assert api.get(API + "training-image/", {"labels": ""}).status_code == 400


@pytest.mark.parametrize("value", ["true", "false", "True", "False"])
def test_a_boolean_filter_takes_true_or_false_in_any_case(api, workspace, value):
    assert api.get(API + "training-image/", {"test": value}).status_code == 200


def test_a_boolean_filter_refuses_anything_else(api, workspace):
    response = api.get(API + "training-image/", {"real": "maybe"})
    assert response.status_code == 400
    assert response.json() == {"real": [MSG_BAD_BOOLEAN]}


@pytest.mark.parametrize("value", ["0.5", "-1", str(10**20)])
def test_verified_is_a_count(api, workspace, value):
    assert api.get(API + "training-image/", {"verified": value}).status_code == 400


def test_a_page_past_what_sql_can_offset_is_a_404(api, workspace):
    assert api.get(API + "training-image/", {"page": 10**20}).status_code == 404


@pytest.mark.parametrize("body", [{"name": 0}, {"name": 1.5}, {"name": True}])
def test_a_json_number_is_not_a_string(api, workspace, body):
    response = api.post(API + "task/", body, format="json")
    assert response.status_code == 400
    assert "name" in response.json()


def test_a_json_integer_is_not_a_uuid(api, workspace):
    response = api.post(API + "task/", {"name": "t", "workspace": 5}, format="json")
    assert response.status_code == 400


def test_a_form_still_sends_its_numbers_as_strings(api, workspace):
    assert api.post(API + "task/", {"name": "0"}).status_code == 201


@pytest.mark.parametrize("path", ["task/", "label/", "training-image/", "classify/"])
def test_a_method_no_route_serves_is_a_405_whatever_the_workspace(api, workspace, path):
    response = api.generic("TRACE", API + path + f"?workspace={uuid.uuid4()}")
    assert response.status_code == 405
