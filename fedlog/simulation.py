"""Run the Flower app as a local simulation with a SuperLink of our own.

``flwr run`` against Flower's auto-started ``local`` SuperLink leaves a shared
daemon behind and installs dependencies per run (which fails offline). Here
each call gets its own FLWR_HOME, free ports and an in-memory SuperLink that
is stopped by PID afterwards; the run's outcome is read from the run
directory, since ``flwr run --stream`` exits 0 even when the run failed.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RUN_DIR_RE = re.compile(r"\[fedlog\] run directory: (\S+)")
QUIET_ENV = {
    "FLWR_TELEMETRY_ENABLED": "0",
    "FLWR_DISABLE_UPDATE_CHECK": "1",
    "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "RAY_DEDUP_LOGS": "0",
}


class SimulationError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def flower_binary(name: str) -> str:
    """This environment's Flower command, also when its scripts are not on PATH."""
    local = Path(sys.executable).parent / name
    return str(local) if local.exists() else name


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def run_config_arg(config: Mapping[str, Any]) -> str:
    """``--run-config`` string for flwr: space-separated key=value with TOML values."""
    return " ".join(f"{k}={_toml_value(v)}" for k, v in config.items())


@dataclass
class SimulationResult:
    run_dir: Path
    log: str
    wall_time_s: float


def run_simulation(
    app_dir: Path,
    run_config: Mapping[str, Any],
    num_supernodes: int = 4,
    cpus_per_client: float = 1.0,
    timeout: float = 3600,
    stream: bool = True,
    watch: Callable[[subprocess.Popen, subprocess.Popen], None] | None = None,
) -> SimulationResult:
    """Start a private SuperLink, ``flwr run`` the app on it, stop it; return the run directory.

    ``watch(superlink, flwr_run)`` is called once the run is submitted, with both processes (a
    monitor, or a fault drill that kills them); a run that does not complete raises SimulationError.
    """
    flwr_home = Path(tempfile.mkdtemp(prefix="fedlog-flwr-"))
    port = free_port()  # one HTTP port serves the Control, Fleet and Runtime APIs
    env = os.environ | QUIET_ENV | {"FLWR_HOME": str(flwr_home)}
    # The SuperLink spawns flower-superexec & co. by name: make this interpreter's scripts win.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    (flwr_home / "config.toml").write_text(
        f'[superlink]\ndefault = "fedlog"\n\n[superlink.fedlog]\naddress = "127.0.0.1:{port}"\ninsecure = true\n'
    )
    link = subprocess.Popen(
        [
            flower_binary("flower-superlink"),
            "--insecure",
            "--simulation",
            "--isolation",
            "subprocess",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--database",
            str(flwr_home / "state.db"),  # private, removed with FLWR_HOME afterwards
            "--disable-runtime-dependency-installation",
        ],
        env=env,
        stdout=(flwr_home / "superlink.log").open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    started = time.time()
    lines: list[str] = []
    try:
        _wait_for_port(port, link, flwr_home / "superlink.log")
        cmd = [
            flower_binary("flwr"),
            "run",
            str(app_dir),
            "fedlog",
            "--stream",
            "--federation-config",
            f"num-supernodes={num_supernodes} client-resources-num-cpus={cpus_per_client:g}",
            "--run-config",
            run_config_arg(run_config),
        ]
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert proc.stdout is not None
        if watch is not None:
            watch(link, proc)
        for line in proc.stdout:
            lines.append(line)
            if stream:
                print(line, end="", flush=True)
            if time.time() - started > timeout:
                proc.kill()
                raise SimulationError(f"simulation exceeded {timeout} s")
        proc.wait()
    finally:
        stop_process_group(link)
        shutil.rmtree(flwr_home, ignore_errors=True)
    log = "".join(lines)
    match = RUN_DIR_RE.search(log)
    if match is None:
        raise SimulationError("the ServerApp never created a run directory:\n" + log[-4000:])
    run_dir = Path(match.group(1))
    if not (run_dir / "summary.json").exists():
        raise SimulationError(f"run did not complete (no {run_dir / 'summary.json'}):\n" + log[-4000:])
    return SimulationResult(run_dir, log, time.time() - started)


def _wait_for_port(port: int, proc: subprocess.Popen, log_file: Path, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            out = log_file.read_text(errors="replace")[-3000:]
            raise SimulationError(f"flower-superlink exited with {proc.returncode}:\n{out}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise SimulationError(f"flower-superlink did not open port {port} within {timeout} s")


def stop_process_group(proc: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    """Stop the SuperLink and its process group (the ServerApp and Ray workers it spawned)."""
    try:
        os.killpg(proc.pid, sig)
        proc.wait(timeout=20)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
