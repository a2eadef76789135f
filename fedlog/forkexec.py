"""A SuperNode's ClientApp launcher that imports the heavy libraries once and forks per message.

Flower runs every ClientApp message in a fresh ``flwr-clientapp`` process, so each message of a
deployed run re-imports torch, transformers and scikit-learn (seconds each) before it does any work,
while a simulation's Ray workers import them once. With ``flower-supernode --isolation process`` this
launcher takes the place of Flower's SuperExec: it asks the SuperNode for tasks as the SuperExec does
and runs each ClientApp task with Flower's own ``run_clientapp`` in a child forked from a process that
has already imported those libraries. The child is still a fresh process per message and starts
without any of the app's own modules (they load from the run's FAB, as in Flower's isolation), so
what a message computes is unchanged; only the import time goes.

Flower's own waits on that path have no setting: the SuperNode sleeps 3 s between polls of the
SuperLink when idle and 0.5 s while it waits for a reply, and a pull of a message that has not fully
arrived first retries after 1 s. ``python -m fedlog.forkexec supernode ARGS`` runs ``flower-supernode
ARGS`` with every sleep of its loop capped at ``POLL_S``, and the SuperNode and each forked ClientApp
retry a pull first after ``POLL_S`` (``fedlog.deploy``). What is sent and computed is unchanged, only
how soon it is noticed.

Run it beside a SuperNode: ``python -m fedlog.forkexec --runtime-api-address 127.0.0.1:9094``
(``fedlog supernode`` and the loopback federation do).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys
import time
import types

from flwr.proto.runtime_pb2 import AcquireTaskRequest  # pylint: disable=E0611
from flwr.supercore.app_utils import start_parent_process_monitor
from flwr.supercore.constant import TaskType
from flwr.supercore.interceptors import RuntimeVersionHttpInterceptor
from flwr.supercore.retry import make_simple_http_retry_invoker
from flwr.supercore.runtime import RuntimeHttpClient
from flwr.supercore.superexec.executor.subprocess_executor import SubprocessExecutor
from flwr.supercore.superexec.executor.types import ExecutionSpec, LaunchResult
from flwr.supercore.superexec.plugin import AutoExecPlugin
from flwr.supernode.runtime.run_clientapp import run_clientapp

from fedlog.deploy import POLL_S, retry_pulls_soon

# Imported before the first fork: what makes a ClientApp process slow to start, and nothing of the app.
WARM_MODULES = (
    "torch",
    "transformers.models.electra.modeling_electra",
    "transformers.models.bert.modeling_bert",
    "sklearn.metrics",
    "shap",
    "drain3",
)
APP_PACKAGES = {"fedlog", "clients", "strategies", "client_app", "server_app"}


class ForkingExecutor(SubprocessExecutor):
    """Flower's subprocess executor, except that a ClientApp task runs in a fork of this process."""

    def __init__(self) -> None:
        self.children: set[int] = set()

    def launch(self, spec: ExecutionSpec) -> LaunchResult:
        if spec.task_type != TaskType.CLIENT_APP:
            return super().launch(spec)
        pid = os.fork()
        if pid == 0:  # the child: one message, then exit, as flwr-clientapp does
            code = 1
            try:
                for name in [m for m in sys.modules if m.split(".")[0] in APP_PACKAGES]:
                    del sys.modules[name]  # the app's code comes from the run's FAB, not from this process
                run_clientapp(spec.runtime_api_address, spec.token, spec.insecure, None, spec.parent_pid)
                code = 0
            except SystemExit as done:  # run_clientapp ends with flwr_exit
                code = done.code if isinstance(done.code, int) else 1
            finally:
                os._exit(code)
        self.children.add(pid)
        return LaunchResult.accepted()

    def reconcile(self) -> None:
        """Reap children that have finished."""
        for pid in list(self.children):
            with contextlib.suppress(ChildProcessError):
                if os.waitpid(pid, os.WNOHANG)[0] == 0:
                    continue
            self.children.discard(pid)


def serve(runtime_api_address: str, parent_pid: int | None = None) -> None:
    """Warm up, then launch every ClientApp task the SuperNode hands out (the loopback Runtime API)."""
    for module in WARM_MODULES:
        importlib.import_module(module)
    # A forked ClientApp pulls its message from its own SuperNode, which may still be fetching it from the
    # SuperLink for seconds: retrying at least every second overshoots that by less than Flower's doubling.
    retry_pulls_soon(cap=1.0)
    if parent_pid is not None:
        start_parent_process_monitor(parent_pid)
    executor = ForkingExecutor()
    client = RuntimeHttpClient.from_server_address(
        server_address=runtime_api_address,
        insecure=True,
        root_certificates=None,
        interceptors=[RuntimeVersionHttpInterceptor(component_name="SuperExec")],
        retry_invoker=make_simple_http_retry_invoker(),
    )
    plugin = AutoExecPlugin(
        runtime_api_address=runtime_api_address, insecure=True, root_certificates_path=None, executor=executor
    )
    try:
        while True:
            executor.reconcile()
            response = client.AcquireTask(
                AcquireTaskRequest(supported_task_types=[TaskType.CLIENT_APP], agentapp_fab_hashes=[])
            )
            if response.HasField("task") and response.token:
                plugin.launch_task(token=response.token, task=response.task)
            time.sleep(POLL_S)
    finally:
        client.close()


def supernode(argv: list[str]) -> None:
    """``flower-supernode ARGV`` whose loop waits at most ``POLL_S`` between polls (its only use of ``time``)."""
    from flwr.supernode import start_client_internal
    from flwr.supernode.cli import flower_supernode

    clock = types.ModuleType("time")
    clock.__dict__.update(vars(time))
    clock.sleep = lambda seconds: time.sleep(min(seconds, POLL_S))
    start_client_internal.time = clock
    retry_pulls_soon()
    sys.argv = ["flower-supernode", *argv]
    flower_supernode()


def main() -> None:
    if sys.argv[1:2] == ["supernode"]:
        supernode(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runtime-api-address", default="127.0.0.1:9094")
    parser.add_argument("--parent-pid", type=int, default=None, help="exit when this process (the SuperNode) does")
    args = parser.parse_args()
    serve(args.runtime_api_address, args.parent_pid)


if __name__ == "__main__":
    main()
