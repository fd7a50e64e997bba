"""apps/core views: the health check and Django's own error pages, answered as JSON."""

from __future__ import annotations

import pytest

from apps.core.ids import parse_uuid

pytestmark = pytest.mark.django_db


def _kinds():
    from django.conf import settings
    from django.db import connection

    return {
        "database_engine": connection.vendor,
        "broker_transport": settings.CELERY_BROKER_URL.split("://")[0],
    }


def test_health_answers_without_a_token_and_names_the_database_and_broker_in_use(anon):
    response = anon.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "broker": "ok", **_kinds()}
    assert response.json()["database_engine"] in ("sqlite", "postgresql")


def test_health_answers_503_naming_the_dependency_that_is_down(anon, monkeypatch):
    monkeypatch.setattr("apps.core.broker.broker_answers", lambda timeout=2.0: False)
    response = anon.get("/health/")
    assert response.status_code == 503
    assert response.json() == {
        "status": "unavailable",
        "database": "ok",
        "broker": "error: unreachable",
        **_kinds(),
    }


def test_a_path_no_route_matches_is_a_json_404(anon):
    response = anon.get("/nothing/here")
    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}


@pytest.mark.parametrize("value", [None, "", "x", 12, "0a8c8186-aee8-47c8-9eaf"])
def test_a_malformed_id_parses_to_none_instead_of_raising(value):
    assert parse_uuid(value) is None


def test_an_unresolvable_path_is_a_json_404_even_with_debug_on(anon, settings):
    settings.DEBUG = True  # scripts/run.sh's development default: Django would answer its HTML page
    response = anon.get("/account/v2/workspace/%C2%84/")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("application/json")
    assert response.json() == {"detail": "Not found."}


def test_the_first_broker_check_of_a_fresh_process_configures_celery_cleanly(tmp_path):
    """The health check may be the first thing in a web process to touch Celery: its pooled
    connection must let Celery read its configuration once (with Redis as the broker, reading
    ``app.conf`` first recursed into Celery's lazy configure: logged, settings half-applied)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    code = (
        "import django; django.setup()\n"
        "from apps.core.broker import broker_answers\n"
        "from config.celery import app\n"
        "assert broker_answers()\n"
        "print(app.conf.task_default_queue)\n"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", "VF_VAR_DIR": str(tmp_path)}
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "Error" not in result.stderr and result.stdout.strip() == "default"
