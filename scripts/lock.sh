#!/usr/bin/env bash
# Regenerate requirements.lock from the ranges in pyproject.toml with pip-tools (pip-compile).
# Every package is pinned, the dev extra (test tools) included, so one lock serves the service,
# the tests and the Docker image.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${VF_VENV:-.venv}/bin/python
"$PY" -m pip install -q "pip-tools>=7.4"
"$PY" -m piptools compile --quiet --extra dev --strip-extras --no-emit-index-url --no-emit-find-links \
  --output-file requirements.lock pyproject.toml
