"""Per-round, per-silo records for any strategy.

Flower's strategies average the clients' metrics away; operators need each
silo's figures, who replied or was rejected and why, how many bytes each sent,
strategy-specific weights, and the global parameters of every round.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from flwr.app import ArrayRecord, Message, MetricRecord

from fedlog.rundir import RunDirectory
from strategies.common import silo_name


def reply_bytes(msg: Message) -> int:
    return sum(record.count_bytes() for record in msg.content.values())


class RecordingMixin:
    """Goes first in the bases, before ``RobustMixin`` and the Flower strategy."""

    run: RunDirectory
    round_offset: int

    def setup_recording(self, run: RunDirectory) -> None:
        self.run = run
        self._pending: dict[str, Any] = {}
        self.final_eval: dict[str, dict[str, float]] = {}

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        replies = list(replies)
        silos: dict[str, dict[str, Any]] = {}
        for msg in replies:
            entry = silos.setdefault(silo_name(msg), {"bytes_sent": reply_bytes(msg)})
            if not msg.has_error():
                entry["train"] = dict(next(iter(msg.content.metric_records.values())))
        arrays, agg = super().aggregate_train(server_round, replies)  # type: ignore[misc]
        for name, reason in self.rejected.items():
            silos.setdefault(name, {})["rejected"] = reason
        for name, info in self.round_info.items():
            silos.setdefault(name, {})["aggregation"] = info
        round_idx = server_round + self.round_offset
        if arrays is not None:
            self.run.save_parameters(round_idx, arrays.to_torch_state_dict())
        self._pending = {"round": round_idx, "silos": silos, "aggregated": arrays is not None}
        self.after_round(round_idx)
        return arrays, agg

    def after_round(self, round_idx: int) -> None:
        """Strategies with extra state to persist (FedGradTrace) hook in here."""
        trajectories = getattr(self, "trajectories", None)
        if trajectories is not None:
            self.run.save_json(f"trajectories/round-{round_idx:03d}.json", trajectories)

    def aggregate_evaluate(self, server_round: int, replies: Iterable[Message]) -> MetricRecord | None:
        replies = list(replies)
        round_idx = server_round + self.round_offset
        record = self._pending if self._pending.get("round") == round_idx else {"round": round_idx, "silos": {}}
        evals = {}
        for msg in replies:
            entry = record["silos"].setdefault(silo_name(msg), {})
            if msg.has_error():
                entry["eval_error"] = msg.error.reason
                continue
            evals[silo_name(msg)] = entry["eval"] = dict(next(iter(msg.content.metric_records.values())))
        agg = super().aggregate_evaluate(server_round, replies)  # type: ignore[misc]
        self.run.append_round(record)
        self.final_eval = evals or self.final_eval
        figures = "  ".join(f"{name} F1={m['f1']:.3f}" for name, m in sorted(evals.items()))
        dropped = [n for n, e in record["silos"].items() if "rejected" in e or "eval_error" in e]
        note = f"  (rejected/failed: {', '.join(dropped)})" if dropped else ""
        print(f"[fedlog] round {round_idx}: {figures}{note}", flush=True)
        return agg
