#!/usr/bin/env bash
# One command: install, migrate, create the demo user, start a Celery worker and the web server.
# Embedded defaults (SQLite, media under var/, a filesystem broker); set DATABASE_URL and
# CELERY_BROKER_URL to use PostgreSQL and Redis. HOST and PORT choose where the server listens.
set -euo pipefail
source "$(dirname "$0")/_venv.sh"
HOST=${HOST:-127.0.0.1}
PORT=${PORT:-8000}
export VF_PUBLIC_URL=${VF_PUBLIC_URL:-http://$HOST:$PORT}

"$PY" manage.py migrate --noinput
"$PY" manage.py collectstatic --noinput -v 0
"$PY" manage.py demo_setup

# The worker consumes both queues here; on bigger installs run one worker per queue (README).
# -B runs the periodic sweep of trainings left behind by a dead worker.
"$VENV/bin/celery" -A config worker -B -Q default,training --concurrency 1 --loglevel INFO \
  --schedule "${VF_VAR_DIR:-$ROOT/var}/celerybeat-schedule" &
WORKER=$!
trap 'kill $WORKER 2>/dev/null; wait $WORKER 2>/dev/null' EXIT INT TERM

"$VENV/bin/gunicorn" config.wsgi:application --bind "$HOST:$PORT" \
  --workers "${WEB_CONCURRENCY:-2}" --threads "${GUNICORN_THREADS:-4}" --timeout 120 --access-logfile -
