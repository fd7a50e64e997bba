#!/usr/bin/env bash
# One command: install everything the tests need and run them. Extra arguments go to pytest.
# With CI=true the suite runs a second time against the real PostgreSQL and Redis on the machine
# (started if they are down), which also runs the tests that need a real Celery worker process.
set -euo pipefail
source "$(dirname "$0")/_venv.sh"

run_pytest() {
  # pytest's exit code 5 means "no tests collected": with a filter that is not a failure.
  "$PY" -m pytest "$@" || { rc=$?; [ $rc -eq 5 ] && return 0; return $rc; }
}

echo "== tests on the embedded defaults (SQLite, filesystem broker, eager jobs) =="
run_pytest "$@"

if [ "${CI:-}" = "true" ]; then
  bash "$ROOT/scripts/services.sh"
  echo "== tests against PostgreSQL and Redis, with a real Celery worker =="
  DATABASE_URL=${CI_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test} \
  CELERY_BROKER_URL=${CI_BROKER_URL:-redis://127.0.0.1:6379/0} \
  VF_CACHE_URL=${CI_CACHE_URL:-redis://127.0.0.1:6379/1} \
    run_pytest "$@"
fi
