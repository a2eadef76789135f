"""fedlog ServerApp: a run directory, the initial model, a recording strategy. Flower glue only."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from flwr.app import ArrayRecord, ConfigRecord, Context, Message
from flwr.proto.node_pb2 import NodeInfo  # pylint: disable=E0611
from flwr.serverapp import Grid, ServerApp
from flwr.supercore.run import Run
from flwr.superlink.grid import HttpGrid

from fedlog import protocol
from fedlog.config import RunSettings
from fedlog.rundir import RunDirectory
from fedlog.session import new_detector
from strategies import build_strategy

app = ServerApp()
POLL_S = 0.2  # how often a deployed run asks the SuperLink for replies


class PromptGrid(Grid):
    """A deployed run's grid: Flower's HttpGrid, except that ``send_and_receive`` asks for replies every
    ``POLL_S`` instead of every 3 s (a simulation's InMemoryGrid asks every 0.1 s). Replies are the same;
    strategies sort them by client, so their arrival order does not matter."""

    def __init__(self, grid: Grid, poll_s: float = POLL_S) -> None:
        self.grid, self.poll_s = grid, poll_s

    def set_run(self, run: Run) -> None:
        self.grid.set_run(run)

    @property
    def run(self) -> Run:
        return self.grid.run

    def create_message(self, *args: Any, **kwargs: Any) -> Message:
        return self.grid.create_message(*args, **kwargs)

    def get_node_ids(self) -> Iterable[int]:
        return self.grid.get_node_ids()

    def get_nodes(self) -> Iterable[NodeInfo]:
        return self.grid.get_nodes()

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        return self.grid.push_messages(messages)

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        return self.grid.pull_messages(message_ids)

    def send_and_receive(self, messages: Iterable[Message], *, timeout: float | None = None) -> Iterable[Message]:
        """HttpGrid's loop (no timeout: wait for every reply) at a shorter interval."""
        pending = set(self.push_messages(messages))
        end = time.time() + (timeout or 0.0)
        replies: list[Message] = []
        while timeout is None or time.time() < end:
            pulled = list(self.pull_messages(pending))
            replies += pulled
            pending -= {m.metadata.reply_to_message_id for m in pulled}
            if not pending:
                break
            time.sleep(self.poll_s)
        return replies


@app.main()
def main(grid: Grid, context: Context) -> None:
    if isinstance(grid, HttpGrid):
        grid = PromptGrid(grid)
    settings = RunSettings.from_flat(context.run_config)
    run = RunDirectory.create(settings.output_dir, f"{settings.detector}-{settings.strategy}", settings.raw)
    print(f"[fedlog] run directory: {run.path}", flush=True)
    state, done, strategy_state = new_detector(settings, device="cpu").state(), 0, {}
    if settings.resume_from:
        done, state, strategy_state = RunDirectory.load_round(settings.resume_from)
        print(f"[fedlog] resuming after round {done} of {settings.resume_from}", flush=True)
    strategy = build_strategy(settings, run, round_offset=done)
    strategy.resume(strategy_state)
    strategy.start(
        grid=grid,
        initial_arrays=ArrayRecord(state),
        num_rounds=settings.num_rounds - done,
        train_config=ConfigRecord({protocol.LOCAL_EPOCHS: settings.local_epochs}),
        timeout=settings.round_timeout,
    )
    summary = run.finish(strategy.final_eval, strategy.report_extra())
    overall_f1 = summary["overall"].get("f1", float("nan"))
    print(f"[fedlog] overall F1 {overall_f1:.3f}; report: {run.path / 'report.md'}", flush=True)
