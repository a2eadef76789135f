"""A real deployment on one host: SuperLink + SuperNodes as separate processes, TLS and node auth on.

The same command lines as on separate machines (``fedlog.deploy``), on
loopback with free ports and a private FLWR_HOME per process. Every process
is started in its own session and stopped by PID (its process group), also
when something fails. Tests use it for the deployment, authentication and
fault checks; operators can use it to rehearse a deployment.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fedlog import deploy
from fedlog.parse.hashing import KEY_ENV, KEY_FILE_ENV
from fedlog.simulation import QUIET_ENV, RUN_DIR_RE, SimulationError, flower_binary, free_port, run_config_arg

CONNECTION = "fedlog-loopback"


@dataclass
class Process:
    name: str
    proc: subprocess.Popen
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """The process and everything it spawned (its own process group)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=20)
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=20)


@dataclass
class LoopbackFederation:
    """Start with ``start_superlink()``, ``add_supernode()`` per silo, then ``run()``; ``close()`` stops all."""

    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="fedlog-deploy-")))
    secure: bool = True
    extra_env: Mapping[str, str] = field(default_factory=dict)
    processes: list[Process] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.certs = deploy.make_certs(self.root / "certs", ["127.0.0.1"], []) if self.secure else None
        self.cli_home = self._home("cli")
        (self.cli_home / "config.toml").write_text(
            f'[superlink]\ndefault = "{CONNECTION}"\n\n' + deploy.connection_toml(CONNECTION, self.address, self.certs)
        )
        self.superlink: Process | None = None
        given = os.environ | dict(self.extra_env)
        self.made_key: Path | None = None  # the SuperNodes' federation key when the caller gave none
        if not (given.get(KEY_ENV) or given.get(KEY_FILE_ENV)):
            self.made_key = self.certs.federation_key if self.certs else self.root / "federation.key"
            if not self.made_key.exists():
                deploy.write_federation_key(self.made_key)

    def __enter__(self) -> LoopbackFederation:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        self.close(keep=exc_type is not None)  # logs stay for a post-mortem when something failed

    def _home(self, name: str) -> Path:
        path = self.root / "homes" / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def env(self, home: Path) -> dict[str, str]:
        env = os.environ | QUIET_ENV | dict(self.extra_env) | {"FLWR_HOME": str(home)}
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
        if self.made_key is not None:
            env[KEY_FILE_ENV] = str(self.made_key)
        return env

    def _spawn(self, name: str, cmd: list[str], home: Path) -> Process:
        log = self.root / f"{name}.log"
        proc = subprocess.Popen(
            [flower_binary(cmd[0]), *cmd[1:]],
            env=self.env(home),
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        process = Process(name, proc, log)
        self.processes.append(process)
        return process

    def start_superlink(self, timeout: float = 60) -> Process:
        """Flower's in-memory state: a rehearsal is never restarted, and the SQLite file a real SuperLink
        keeps (``--database``) answered "database is locked" when four replies landed at once on 2 busy cores."""
        cmd = deploy.superlink_command(self.certs, host="127.0.0.1", port=self.port)
        self.superlink = self._spawn("superlink", cmd, self._home("superlink"))
        self._wait_for_port(self.superlink, timeout)
        return self.superlink

    def cli(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run(
            [flower_binary("flwr"), *args], env=self.env(self.cli_home), capture_output=True, text=True, timeout=timeout
        )

    def register(self, name: str) -> int:
        """Create the SuperNode's key pair and register its public key; returns the node id."""
        assert self.certs is not None, "node authentication needs TLS"
        deploy.make_node_keys(self.certs, name)
        cmd = deploy.register_command(self.certs.node_public(name), CONNECTION)
        done = self.cli(*cmd[1:])
        reply = done.stdout[done.stdout.find("{") :]
        if done.returncode != 0 or not reply:
            raise SimulationError(f"flwr supernode register {name} failed:\n{done.stdout}\n{done.stderr}")
        return int(json.loads(reply)["node-id"])

    def node_ids(self) -> list[int]:
        """Nodes the SuperLink lists as online (activated by a SuperNode that proved its key)."""
        done = self.cli("supernode", "list", CONNECTION, "--format", "json")
        reply = done.stdout[done.stdout.find("{") :]
        if done.returncode != 0 or not reply:
            raise SimulationError(f"flwr supernode list failed:\n{done.stdout}\n{done.stderr}")
        nodes = json.loads(reply).get("nodes", [])
        return sorted(int(n["node-id"]) for n in nodes if str(n.get("status", "")).lower() == "online")

    def add_supernode(
        self, name: str, silo: str, private_key: Path | None = None, insecure: bool = False, **kwargs: Any
    ) -> Process:
        """A SuperNode with the key pair ``name`` (see ``register``); ``insecure``: no TLS, no key."""
        partition = sum(p.name.startswith("supernode-") for p in self.processes)
        port = free_port()
        cmd = deploy.supernode_command(
            self.address,
            silo,
            None if insecure else self.certs,
            name=name,
            partition=partition,
            clientapp_port=port,
            private_key=private_key,
            **kwargs,
        )
        home = self._home(f"supernode-{name}")
        node = self._spawn(f"supernode-{name}", cmd, home)
        self._spawn(f"launcher-{name}", deploy.launcher_command(port, node.proc.pid), home)
        return node

    def wait_for_nodes(self, count: int, timeout: float = 90) -> list[int]:
        deadline = time.time() + timeout
        while time.time() < deadline:
            ids = self.node_ids()
            if len(ids) >= count:
                return ids
            time.sleep(1.0)
        raise SimulationError(f"fewer than {count} SuperNodes online after {timeout:g} s")

    def submit(self, app_dir: Path, run_config: Mapping[str, Any]) -> subprocess.Popen:
        """``flwr run APP CONNECTION --stream``; the caller reads its stdout."""
        cmd = [
            flower_binary("flwr"),
            "run",
            str(app_dir),
            CONNECTION,
            "--stream",
            "--run-config",
            run_config_arg(run_config),
        ]
        return subprocess.Popen(
            cmd, env=self.env(self.cli_home), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )

    def run(self, app_dir: Path, run_config: Mapping[str, Any], timeout: float = 600) -> tuple[Path, str]:
        """Submit and stream a run to the end; returns its run directory (must hold summary.json) and the log."""
        proc = self.submit(app_dir, run_config)
        try:
            log = self.communicate(proc, timeout)
        finally:
            if proc.poll() is None:
                proc.kill()
        match = RUN_DIR_RE.search(log)
        if match is None or not (Path(match.group(1)) / "summary.json").exists():
            raise SimulationError("deployed run did not complete:\n" + log[-4000:] + self.tail())
        return Path(match.group(1)), log

    @staticmethod
    def communicate(proc: subprocess.Popen, timeout: float) -> str:
        try:
            out, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
            raise SimulationError(f"run exceeded {timeout:g} s:\n{out[-4000:]}") from None
        return out

    def tail(self, chars: int = 1500) -> str:
        return "".join(f"\n--- {p.name} ---\n{p.output()[-chars:]}" for p in self.processes)

    def _wait_for_port(self, process: Process, timeout: float) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if not process.alive():
                raise SimulationError(f"{process.name} exited with {process.proc.returncode}:\n{process.output()}")
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.2)
        raise SimulationError(f"{process.name} did not open port {self.port} within {timeout:g} s")

    def close(self, keep: bool = False) -> None:
        for process in reversed(self.processes):
            process.kill(signal.SIGTERM)
        if not keep:
            shutil.rmtree(self.root, ignore_errors=True)
