"""``scripts/run.sh`` stops cleanly on SIGTERM and on Ctrl-C, with uploads in flight: its web
server, worker and beat all end, nothing it started is left running, and no file is half-written.

It runs as tests/test_setup.py's ``run_stack`` starts it (the test run's virtual environment,
``VF_VENV``, so there is nothing to install). SIGTERM goes to the script alone, as a supervisor
that signals the process it started does (``docker stop`` of a container running it, ``kill
<pid>``); Ctrl-C is SIGINT to the whole process group, as a terminal sends it. Every process the
stack started is found by its environment (VF_VAR_DIR), wherever it is in the process tree.
"""

from __future__ import annotations

import base64
import os
import re
import signal
import subprocess
import threading
import time

import numpy as np
import pytest

from tests.faults.conftest import call, check_storage, group_processes, processes_of, wait_until
from tests.pictures import png
from tests.test_setup import run_stack

pytestmark = pytest.mark.slow

API = "/recognition/v2/"


@pytest.mark.parametrize(
    "signum, exit_status", [(signal.SIGTERM, 143), (signal.SIGINT, 130)], ids=["SIGTERM", "Ctrl-C"]
)
def test_run_sh_stops_everything_it_started_and_leaves_no_half_written_file(
    tmp_path, stack_env, signum, exit_status
):
    var = tmp_path / "var"
    uploads: list[int] = []
    stop = threading.Event()

    with run_stack(tmp_path, with_process=True, **stack_env) as (base, log, process):
        log.seek(0)
        token = re.search(r"API token:\s+([0-9a-f]{40})", log.read()).group(1)
        wait_until(lambda: log.seek(0) or " ready." in log.read(), "the worker to be ready", timeout=120)
        started = processes_of(var)
        commands = " ".join(started.values())
        assert "gunicorn" in commands and "celery" in commands, started
        assert sum("celery" in line for line in started.values()) >= 3  # worker, pool process, beat

        def client(n: int) -> None:
            rng = np.random.default_rng(n)
            while not stop.is_set():
                body = {
                    "base64": base64.b64encode(
                        png(rng.integers(0, 256, (24, 24, 3), dtype=np.uint8))
                    ).decode()
                }
                uploads.append(call(base, token, "POST", API + "training-image/", body)[0])

        threads = [threading.Thread(target=client, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        time.sleep(3)
        if signum == signal.SIGINT:
            os.killpg(process.pid, signal.SIGINT)  # what the terminal does on Ctrl-C
        else:
            os.kill(process.pid, signal.SIGTERM)  # the script only
        try:
            status = process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            pytest.fail(f"run.sh did not stop within 60 s; still running: {processes_of(var)}")
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=60)

        assert status == exit_status
        assert processes_of(var) == {}  # no web server, worker, pool process or beat left
        assert group_processes(process.pid) == {}
        log.seek(0)
        output = log.read()
    assert uploads.count(201) >= 1, uploads  # uploads were under way

    # Requests in flight were finished, not cut: every stored file has its row and every row its file.
    report = check_storage(var, stack_env)
    assert (report["orphan_files"], report["missing"]) == ([], []), report
    assert "Traceback" not in output.split("Warm shutdown")[-1], output[-3000:]
