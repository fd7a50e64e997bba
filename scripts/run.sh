#!/usr/bin/env bash
# One command: install, migrate, create the demo user, start a Celery worker and the web server.
# Embedded defaults (SQLite, media under var/, a filesystem broker); set DATABASE_URL and
# CELERY_BROKER_URL to use PostgreSQL and Redis. HOST and PORT choose where the server listens.
set -euo pipefail
HOST=${HOST:-127.0.0.1}
PORT=${PORT:-8000}
# Beyond this machine, never with the development secret key or the demo/demo account, unless
# told so explicitly: set DJANGO_SECRET_KEY and VF_DEMO_PASSWORD (or VF_ALLOW_INSECURE_DEMO=1).
case "$HOST" in
  127.*|localhost|::1) ;;
  *)
    if { [ -z "${DJANGO_SECRET_KEY:-}" ] || [ -z "${VF_DEMO_PASSWORD:-}" ]; } && [ "${VF_ALLOW_INSECURE_DEMO:-}" != "1" ]; then
      echo "Refusing to listen on $HOST with the development secret key or the demo/demo account." >&2
      echo "Set DJANGO_SECRET_KEY and VF_DEMO_PASSWORD, or VF_ALLOW_INSECURE_DEMO=1 to do it anyway." >&2
      exit 2
    fi
    ;;
esac
source "$(dirname "$0")/_venv.sh"
export VF_PUBLIC_URL=${VF_PUBLIC_URL:-http://$HOST:$PORT}

"$PY" manage.py migrate --noinput
"$PY" manage.py collectstatic --noinput -v 0
"$PY" manage.py demo_setup --password "${VF_DEMO_PASSWORD:-demo}"

# The worker consumes both queues here; on bigger installs run one worker per queue (docs/operations.md).
# -B runs the periodic sweep of trainings left behind by a dead worker.
"$VENV/bin/celery" -A config worker -B -Q default,training --concurrency 1 --loglevel INFO \
  --schedule "${VF_VAR_DIR:-$ROOT/var}/celerybeat-schedule" &
WORKER=$!

# No control socket: its default path is per user, shared by every gunicorn of this user.
"$VENV/bin/gunicorn" config.wsgi:application --bind "$HOST:$PORT" \
  --workers "${WEB_CONCURRENCY:-2}" --threads "${GUNICORN_THREADS:-4}" --timeout 120 --access-logfile - \
  --no-control-socket &
WEB=$!

# Stopping (Ctrl-C, SIGTERM, or the web server ending): SIGTERM to both, then wait for both.
# gunicorn finishes the requests in flight; the worker hands a running training back to the queue
# after VF_WORKER_SHUTDOWN_GRACE seconds. Both run in the background and the script waits with
# `wait`, because bash runs a trap only once a foreground command has ended: with gunicorn in the
# foreground, a SIGTERM to this script alone did nothing until gunicorn stopped by itself.
# The worker's signal comes a second after the web server's: a Ctrl-C (and systemd's stop) signals
# the whole process group, so the worker has its own signal already, and a Celery worker that gets
# a second one while its handler of the first runs deadlocks for good (the handler's signal dispatch
# holds a lock that is not re-entrant; seen in CI as a worker that never stopped after Ctrl-C).
# Signals a second apart are handled one after the other.
stop() {
  trap - EXIT INT TERM
  kill -TERM "$WEB" 2>/dev/null || true
  sleep 1
  kill -TERM "$WORKER" 2>/dev/null || true
  wait "$WEB" "$WORKER" 2>/dev/null || true
}
trap 'stop; exit 130' INT
trap 'stop; exit 143' TERM
trap stop EXIT
wait "$WEB"
