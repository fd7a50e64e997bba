#!/usr/bin/env bash
# One command: install everything the tests need and run them. Extra arguments go to pytest.
# With CI=true the suite runs a second time against the real PostgreSQL and Redis on the machine
# (started if they are down), which also runs the tests that need a real Celery worker process.
set -euo pipefail
source "$(dirname "$0")/_venv.sh"

# The console's browser tests (tests/console/test_browser.py) drive the distribution's Chromium,
# never a browser Playwright downloads. Install it when it is missing and this shell can (root
# with apt-get, as on CI machines); without it those tests skip on a laptop and fail with CI=true.
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "Installing Chromium for the browser tests"
  apt-get install -y -q chromium chromium-driver >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium chromium-driver >/dev/null 2>&1; } \
    || echo "Could not install Chromium; the browser tests will skip (or fail with CI=true)" >&2
fi

run_pytest() {
  # pytest's exit code 5 means "no tests collected": with a filter that is not a failure.
  "$PY" -m pytest "$@" || { rc=$?; [ $rc -eq 5 ] && return 0; return $rc; }
}

echo "== tests on the embedded defaults (SQLite, filesystem broker, eager jobs) =="
run_pytest "$@"

if [ "${CI:-}" = "true" ]; then
  bash "$ROOT/scripts/services.sh"
  echo "== tests against PostgreSQL and Redis, with a real Celery worker =="
  # VF_TEST_PASS=services leaves out the tests that cannot see the database or broker (tests/ml,
  # the static checks): the first pass ran them (tests/conftest.py).
  VF_TEST_PASS=services \
  DATABASE_URL=${CI_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test} \
  CELERY_BROKER_URL=${CI_BROKER_URL:-redis://127.0.0.1:6379/0} \
  VF_CACHE_URL=${CI_CACHE_URL:-redis://127.0.0.1:6379/1} \
    run_pytest "$@"
fi
