"""Per-round, per-silo records for any strategy.

Flower's strategies average the clients' metrics away; operators need each
silo's figures, who replied or was rejected and why, how many bytes each sent,
strategy-specific weights, and the global parameters of every round.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord
from flwr.serverapp import Grid

from fedlog.rundir import RunDirectory
from strategies.common import SILO_RECORD, silo_name

NO_REPLY = "no reply within round-timeout"


def reply_bytes(msg: Message) -> int:
    return sum(record.count_bytes() for record in msg.content.values()) if msg.has_content() else 0


class RecordingMixin:
    """Goes first in the bases, before ``RobustMixin`` and the Flower strategy."""

    run: RunDirectory
    round_offset: int

    def setup_recording(self, run: RunDirectory) -> None:
        self.run = run
        self._pending: dict[str, Any] = {}
        self.final_eval: dict[str, dict[str, float]] = {}
        self._node_names: dict[int, str] = {}  # node id -> silo, learned from earlier replies
        self._sent: list[Message] = []

    def configure_train(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid):
        self._sent = list(super().configure_train(server_round, arrays, config, grid))  # type: ignore[misc]
        return self._sent

    def configure_evaluate(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid):
        self._sent = list(super().configure_evaluate(server_round, arrays, config, grid))  # type: ignore[misc]
        return self._sent

    def _node_of(self, msg: Message) -> int:
        """The node a reply answers for: an error reply the SuperLink made up (node unavailable)
        comes from the SuperLink itself, so map it back through the message it replies to."""
        sent = {m.metadata.message_id: m.metadata.dst_node_id for m in self._sent}
        return sent.get(msg.metadata.reply_to_message_id, msg.metadata.src_node_id)

    def who(self, msg: Message) -> str:
        node = self._node_of(msg)
        if not msg.has_error() and SILO_RECORD in msg.content.config_records:
            self._node_names[node] = silo_name(msg)
            return self._node_names[node]
        return self._node_names.get(node, f"node-{node}")

    def _dropped(self, replies: list[Message]) -> dict[str, str]:
        """Sampled nodes that sent nothing back before the round timed out."""
        answered = {self._node_of(m) for m in replies}
        missing = {m.metadata.dst_node_id for m in self._sent} - answered
        return {self._node_names.get(n, f"node-{n}"): NO_REPLY for n in sorted(missing)}

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        replies = list(replies)
        silos: dict[str, dict[str, Any]] = {}
        for msg in replies:
            entry = silos.setdefault(self.who(msg), {"bytes_sent": reply_bytes(msg)})
            if not msg.has_error():
                entry["train"] = dict(next(iter(msg.content.metric_records.values())))
        arrays, agg = super().aggregate_train(server_round, replies)  # type: ignore[misc]
        for name, reason in self.rejected.items():
            silos.setdefault(name, {})["rejected"] = reason
        for name, info in self.round_info.items():
            silos.setdefault(name, {})["aggregation"] = info
        for name, reason in self._dropped(replies).items():
            silos.setdefault(name, {})["dropped"] = reason
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
            name = self.who(msg)
            entry = record["silos"].setdefault(name, {})
            if msg.has_error():
                entry["eval_error"] = msg.error.reason
                continue
            evals[name] = entry["eval"] = dict(next(iter(msg.content.metric_records.values())))
        for name, reason in self._dropped(replies).items():
            record["silos"].setdefault(name, {})["eval_dropped"] = reason
        agg = super().aggregate_evaluate(server_round, replies)  # type: ignore[misc]
        self.run.append_round(record)
        self.final_eval = evals or self.final_eval
        figures = "  ".join(f"{name} F1={m['f1']:.3f}" for name, m in sorted(evals.items()))
        failed = ("rejected", "eval_error", "dropped", "eval_dropped")
        dropped = [n for n, e in record["silos"].items() if any(k in e for k in failed)]
        note = f"  (rejected/failed: {', '.join(dropped)})" if dropped else ""
        print(f"[fedlog] round {round_idx}: {figures}{note}", flush=True)
        return agg
