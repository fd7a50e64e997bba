"""The job queue as the apps see it: is the broker there, how many messages wait, send a job.

Through Celery's current app (config/celery.py makes it and configures it), so no app imports
``config``. A service enqueues a job by its name (``job_enqueue``) rather than by importing the
jobs module, because jobs call services, never the reverse (the layers in pyproject.toml).
"""

from __future__ import annotations

import logging

from celery import current_app

logger = logging.getLogger(__name__)


def broker_reachable(timeout: float = 2.0) -> bool:
    """True when jobs can be sent: eager mode, or the broker answers within ``timeout`` seconds."""
    return current_app.conf.task_always_eager or broker_answers(timeout)


def waiting_messages(queue: str, timeout: float = 2.0) -> int | None:
    """How many messages wait in ``queue`` (sent, not yet taken by a worker); None when the broker
    cannot be asked. Works for the brokers we document (filesystem, Redis, RabbitMQ)."""
    from kombu.exceptions import ChannelError

    if current_app.conf.task_always_eager:
        return 0
    try:
        with current_app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=timeout)
            with conn.channel() as channel:
                try:
                    return int(channel.queue_declare(queue=queue, passive=True).message_count)
                except ChannelError:
                    return 0  # the queue does not exist (Redis drops an empty one): nothing waits
    except Exception:  # noqa: BLE001 - any failure means "cannot tell"
        logger.warning("could not count the messages waiting in %s", queue, exc_info=True)
        return None


_POOLS: dict = {}


def _broker_pool():
    """A small pool of connections per broker URL (the URL is fixed in a server; tests change it).

    The URL comes from ``connection_for_write`` (no I/O), which reads the configuration the way
    Celery expects on first use."""
    connection = current_app.connection_for_write()
    url = connection.as_uri(include_password=True)
    if url not in _POOLS:
        _POOLS[url] = connection.Pool(limit=2)
    return _POOLS[url]


def broker_answers(timeout: float = 2.0) -> bool:
    """True when the broker answers within ``timeout`` seconds.

    Through the app's connection pool, so a health check every second does not open (and tear
    down) a broker connection each time; on Redis a ``PING`` proves the pooled connection is
    still answered, not merely open."""
    try:
        with _broker_pool().acquire(block=True, timeout=timeout) as conn:
            conn.ensure_connection(max_retries=1, timeout=timeout)
            client = getattr(conn.default_channel, "client", None)
            if callable(getattr(client, "ping", None)):
                client.ping()
        return True
    except Exception:  # noqa: BLE001 - any failure means "unreachable"
        return False


def broker_transport() -> str:
    """The broker's kind from its URL ("filesystem", "redis", "amqp"...), never its address."""
    return str(current_app.conf.broker_url or "").split("://", 1)[0] or "unknown"


def job_enqueue(name: str, *args) -> None:
    """Send the job registered as ``name`` with ``args`` (ids), as its own ``delay`` would: its
    options (queue, time limits) apply, and in eager mode it runs here and now.

    The job must be registered: each app's ``AppConfig.ready`` imports its ``jobs`` module."""
    current_app.tasks[name].delay(*args)
