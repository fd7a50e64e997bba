"""Production mode: refuses to start misconfigured, and passes Django's deployment checks."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "VF_ENV"))}
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env={**clean, **env}, capture_output=True, text=True
    )


def test_production_refuses_to_start_without_a_secret_key():
    result = _manage("check", VF_ENV="production", DJANGO_ALLOWED_HOSTS="example.com")
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY must be set" in result.stderr


def test_production_refuses_to_start_without_allowed_hosts():
    result = _manage("check", VF_ENV="production", DJANGO_SECRET_KEY=secrets.token_urlsafe(64))
    assert result.returncode != 0
    assert "DJANGO_ALLOWED_HOSTS must be set" in result.stderr


def test_production_settings_pass_the_deploy_checks():
    result = _manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        VF_ENV="production",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(64),
        DJANGO_ALLOWED_HOSTS="vision.example.com",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def _compose_environment() -> tuple[dict[str, str], dict]:
    """The app's environment in docker/compose.yaml, with each ${VAR:-default} at its default."""
    import re

    import yaml

    compose = yaml.safe_load((ROOT / "docker" / "compose.yaml").read_text())
    app = compose["x-app"]["environment"]

    def resolve(value) -> str:
        value = re.sub(r"\$\{(\w+):-([^}]*)\}", lambda m: m.group(2), str(value))
        return re.sub(r"\$\{(\w+):\?[^}]*\}", "x" * 64, value)  # required: a stand-in secret

    return {key: resolve(value) for key, value in app.items()}, compose


def test_compose_serves_reachable_image_urls_and_trusts_no_proxy_it_does_not_have():
    environment, compose = _compose_environment()
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "VF_", "AWS_"))}
    probe = (
        "import json, django; django.setup(); from django.conf import settings as s; "
        "print(json.dumps({'proxy': s.SECURE_PROXY_SSL_HEADER, 'redirect': s.SECURE_SSL_REDIRECT, "
        "'public': s.STORAGES.get('public', {}).get('OPTIONS', {}).get('endpoint_url'), "
        "'internal': s.STORAGES['default']['OPTIONS']['endpoint_url']}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=ROOT,
        env={**clean, **environment, "DJANGO_SETTINGS_MODULE": "config.settings"},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr

    seen = json.loads(result.stdout.strip().splitlines()[-1])
    # No proxy in the compose file: X-Forwarded-Proto from a client must not count as HTTPS.
    assert not any("proxy" in name or "nginx" in name or "traefik" in name for name in compose["services"])
    assert seen["proxy"] is None and seen["redirect"] is False
    # The service reaches MinIO by its service name, clients by the published port.
    assert seen["internal"] == "http://minio:9000"
    assert seen["public"] == "http://localhost:9000"
    assert "9000:9000" in compose["services"]["minio"]["ports"]
