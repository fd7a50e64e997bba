"""Who holds a training: the identity of a worker process, and whether that process is gone.

A claim records ``host/pid/start`` of the process that trains the version (``start`` is the
process's start time in clock ticks since boot, from ``/proc``, so a reused pid is not taken for
the dead process). When a worker process dies (SIGKILL, OOM killer), Celery redelivers its job at
once (``acks_late`` + ``reject_on_worker_lost``); the new run finds the version IN_TRAINING with a
heartbeat that is still fresh. On the same machine it can tell that the claimer is gone and take
over without waiting for the heartbeat to age; a claim held on another machine cannot be checked
from here and is left to the sweep (``VF_TRAINING_STALE_AFTER``).
"""

from __future__ import annotations

import os
import socket
from functools import lru_cache


def _start_ticks(pid: int) -> str:
    """The process's start time (field 22 of /proc/<pid>/stat), '' where /proc is missing."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            stat = handle.read()
    except OSError:
        return ""
    # The command name (field 2) is in parentheses and may hold spaces: split after it.
    fields = stat[stat.rfind(")") + 2 :].split()
    return fields[19] if len(fields) > 19 else ""


@lru_cache(maxsize=1)
def _host() -> str:
    return socket.gethostname()


def worker_identity() -> str:
    """This process, as recorded with a claim."""
    pid = os.getpid()
    return f"{_host()}/{pid}/{_start_ticks(pid)}"


def claim_holder_is_gone(claimed_by: str) -> bool:
    """True only when ``claimed_by`` names a process of this machine that no longer runs.

    False when the holder runs, is on another machine, or the claim says nothing (older rows).
    """
    try:
        host, pid_text, ticks = claimed_by.rsplit("/", 2)
        pid = int(pid_text)
    except ValueError:
        return False
    if host != _host() or pid <= 0:
        return False
    if pid == os.getpid():
        return False  # this very process holds it (a thread pool): it is alive
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # a process of another user has the pid: ours may be gone, but not provably
    current = _start_ticks(pid)
    return bool(ticks and current and current != ticks)  # the pid was reused by another process
