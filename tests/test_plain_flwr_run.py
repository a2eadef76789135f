"""Flower's own path: ``flwr run .`` in the app directory with a fresh FLWR_HOME and Flower's default
``local`` connection (an auto-started simulation SuperLink, 2 SuperNodes by default). A run that needs
more nodes fails within seconds naming the fix; one that fits completes. The SuperLink Flower started
is stopped by its PID afterwards."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import TINY_FASTLOGAD

from fedlog.cli import APP_DIR
from fedlog.simulation import QUIET_ENV, flower_binary, free_port, run_config_arg


def _superlink_pids(port: str) -> list[int]:
    """The flower-superlink that `flwr` started on our private port (it runs detached)."""
    pids = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError):
            argv = cmdline.read_bytes().split(b"\0")
            if any(a.endswith(b"flower-superlink") for a in argv[:2]) and port.encode() in argv:
                pids.append(int(cmdline.parent.name))
    return pids


def _flwr_run(env: dict, config: dict, timeout: float) -> tuple[str, float]:
    started = time.time()
    cmd = [flower_binary("flwr"), "run", ".", "--stream", "--run-config", run_config_arg(config)]
    done = subprocess.run(cmd, cwd=APP_DIR, env=env, capture_output=True, text=True, timeout=timeout)
    return done.stdout + done.stderr, time.time() - started


@pytest.mark.slow
def test_plain_flwr_run_fails_fast_with_the_fix_or_completes(tmp_path, state_dir) -> None:
    http_port, control_port = str(free_port()), str(free_port())
    env = os.environ | QUIET_ENV | {"FLWR_HOME": str(tmp_path / "flwr-home")}
    env |= {"FLWR_LOCAL_SUPERLINK_HTTP_API_PORT": http_port, "FLWR_LOCAL_CONTROL_API_PORT": control_port}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env["PATH"]])
    runs = tmp_path / "runs"
    tiny = TINY_FASTLOGAD | {"output-dir": str(runs), "num-server-rounds": 1, "explain.every": -1}
    try:
        log, seconds = _flwr_run(env, tiny, timeout=300)  # the default 4 silos on Flower's default 2 nodes
        assert 'num-supernodes=4"' in log and "flwr federation simulation-config" in log, log[-3000:]
        assert seconds < 120, seconds
        assert not list(runs.glob("*/summary.json"))

        fits = tiny | {"data.silos": "hdfs=synthetic, bgl=synthetic", "min-nodes": 2, "data.synthetic-scale": 0.2}
        log, _ = _flwr_run(env, fits, timeout=600)
        assert len(list(runs.glob("*/summary.json"))) == 1, log[-3000:]
    finally:
        pids = _superlink_pids(http_port)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGTERM)  # detached: its own session, so its group is its children
    assert pids, "no auto-started SuperLink found"
