"""Per-round, per-silo records for any Flower strategy.

Flower's strategies average the clients' metrics away; operators need each
silo's figures, who replied, how many bytes each sent and the global
parameters of every round. ``with_recording(FedAvg)`` returns a subclass that
writes all of that to the run directory and prints a line per round.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from flwr.app import ArrayRecord, Message, MetricRecord

from fedlog.rundir import RunDirectory

SILO_RECORD = "silo"  # ConfigRecord in replies: {"format": ..., "partition": ...}


def silo_name(msg: Message) -> str:
    info = msg.content.config_records.get(SILO_RECORD)
    if info is None:
        return f"node-{msg.metadata.src_node_id}"
    return f"{info['partition']}:{info['format']}"


def reply_bytes(msg: Message) -> int:
    return sum(record.count_bytes() for record in msg.content.values())


class RecordingMixin:
    """Goes before a Flower strategy in the bases; needs ``self.run`` (a RunDirectory)."""

    run: RunDirectory

    def _setup_recording(self, run: RunDirectory) -> None:
        self.run = run
        self._pending: dict[str, Any] = {}
        self.final_eval: dict[str, dict[str, float]] = {}

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        replies = list(replies)
        silos = {}
        for msg in replies:
            if msg.has_error():
                silos[f"node-{msg.metadata.src_node_id}"] = {"error": msg.error.reason}
                continue
            metrics = dict(next(iter(msg.content.metric_records.values())))
            silos[silo_name(msg)] = {"train": metrics, "bytes_sent": reply_bytes(msg)}
        arrays, agg = super().aggregate_train(server_round, replies)  # type: ignore[misc]
        if arrays is not None:
            self.run.save_parameters(server_round, arrays.to_torch_state_dict())
        self._pending = {"round": server_round, "silos": silos, "train": dict(agg or {})}
        return arrays, agg

    def aggregate_evaluate(self, server_round: int, replies: Iterable[Message]) -> MetricRecord | None:
        replies = list(replies)
        record = (
            self._pending
            if self._pending.get("round") == server_round
            else {"round": server_round, "silos": {}}
        )
        evals = {}
        for msg in replies:
            if msg.has_error():
                record["silos"].setdefault(f"node-{msg.metadata.src_node_id}", {})["eval_error"] = (
                    msg.error.reason
                )
                continue
            metrics = dict(next(iter(msg.content.metric_records.values())))
            evals[silo_name(msg)] = metrics
            record["silos"].setdefault(silo_name(msg), {})["eval"] = metrics
        agg = super().aggregate_evaluate(server_round, replies)  # type: ignore[misc]
        self.run.append_round(record)
        self.final_eval = evals or self.final_eval
        figures = "  ".join(f"{name} F1={m['f1']:.3f}" for name, m in sorted(evals.items()))
        print(f"[fedlog] round {server_round}: {figures}", flush=True)
        return agg


def with_recording(strategy_cls: type, run: RunDirectory, **kwargs: Any) -> Any:
    """An instance of ``strategy_cls`` that records every round into ``run``."""
    cls = type(f"Recording{strategy_cls.__name__}", (RecordingMixin, strategy_cls), {})
    strategy = cls(**kwargs)
    strategy._setup_recording(run)
    return strategy
