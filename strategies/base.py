"""What every fedlog strategy does around a Flower strategy: screen, record, explain, persist.

``FedlogStrategy`` goes before the Flower strategy in a subclass's bases
(``class FedAvgStrategy(FedlogStrategy, FedAvg)``). It

- waits at most ``node-timeout`` for the nodes a round needs, then fails loudly (a
  simulation, which no node joins later, within seconds);
- rejects (and records) replies that carry an error, NaN/Inf, or arrays whose
  names or shapes differ from the global model; sorts the rest by client (a
  Flower node, named ``partition:format`` for people, ``who``) so the
  result does not depend on arrival order; keeps the global model when fewer
  than ``min_train_nodes`` usable replies remain;
- writes each round's per-silo figures, bytes sent, rejections, drop-outs and
  aggregation weights to ``rounds.jsonl`` and the global parameters to
  ``params/``; Flower's own strategies would average the silos' metrics away;
- asks for SHAP explanations on the rounds ``explain.every`` picks and merges them;
- persists whatever ``persisted_state()`` returns after every round, and takes it
  back through ``restore_state()`` on resume, so the run directory knows no
  strategy by name;
- with ``dp.mode`` on, hands the screened replies to Flower's DP wrapper
  (strategies/privacy.py) instead of ``_aggregate`` and records the epsilon spent;
- with ``secagg.enabled``, runs each round's train exchange as Flower's SecAgg+
  (strategies/secagg.py) inside ``configure_train`` and records its per-silo
  metrics and the one weighted mean it yields: there is no update of a silo to
  screen, weigh or name.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MetricRecord
from flwr.serverapp import Grid
from flwr.superlink.grid import InMemoryGrid

from fedlog import protocol
from fedlog.explain.plots import plot_explanations
from fedlog.privacy import PrivacyParams
from fedlog.rundir import RunDirectory
from fedlog.secagg import SecAggParams
from strategies.common import NodesMissing, decode, screen, to_numpy, wait_for_nodes
from strategies.explanations import explain_round, merge_explanations
from strategies.privacy import DifferentialPrivacy
from strategies.secagg import SecureResult, SecureRound

NO_REPLY = "no reply within round-timeout"
NO_MASKED_UPDATE = "no masked update (the client failed or timed out during SecAgg+)"
SECURE = "secagg: only the weighted sum of the silos' parameters reached the server"
PRIVACY = "privacy"  # rounds.jsonl, summary.json and the persisted state: the DP ledger
SIMULATION_SETTLE_S = 10.0  # a simulation registers all its nodes before Ray starts: a second or two


def check_simulation_size(grid: Grid, needed: int) -> None:
    """In a simulation no node will join later: fail within seconds, naming the fix, instead of
    waiting ``node-timeout`` for nodes that cannot come (``flwr run .`` simulates 2 by default)."""
    if not isinstance(grid, InMemoryGrid):
        return
    deadline = time.monotonic() + SIMULATION_SETTLE_S
    while (have := len(list(grid.get_node_ids()))) < needed and time.monotonic() < deadline:
        time.sleep(0.2)
    if have < needed:
        raise NodesMissing(
            f"this simulation has {have} SuperNodes but the run needs {needed} (min-nodes, one per silo "
            f'of data.silos): run `flwr run . --federation-config "num-supernodes={needed}"`, or once '
            f"`flwr federation simulation-config --num-supernodes {needed}`, or lower min-nodes and data.silos"
        )


@dataclass(frozen=True)
class RunOptions:
    """What every strategy needs to know of the run besides its own parameters."""

    total_rounds: int
    round_offset: int = 0  # rounds already done before a resume
    node_timeout: float = 600.0
    explain_every: int = 0
    explain_top_n: int = 10
    privacy: PrivacyParams = field(default_factory=PrivacyParams)  # dp.*: off unless the run config asks
    secagg: SecAggParams = field(default_factory=SecAggParams)  # secagg.*: off unless the run config asks
    round_timeout: float | None = None  # how long SecAgg+ waits at each of its stages (None: for every reply)


def reply_bytes(msg: Message) -> int:
    return sum(record.count_bytes() for record in msg.content.values()) if msg.has_content() else 0


class FedlogStrategy:
    """Screening, per-silo records, explanations and resumable state for any Flower strategy."""

    min_train_nodes: int
    min_available_nodes: int

    # Why differential privacy (Flower's wrappers: noise for an unweighted mean of clipped updates) or
    # SecAgg+ (the server sees only the sum) cannot serve this strategy; None where they can.
    # A strategy is refused until it states otherwise.
    dp_refusal: ClassVar[str | None] = "its aggregation is not an unweighted mean of the updates"
    secagg_refusal: ClassVar[str | None] = "its aggregation is not a plain sum of the updates"

    def __init__(self, run: RunDirectory, options: RunOptions, **flower_kwargs: Any) -> None:
        super().__init__(**flower_kwargs)
        self.run = run
        self.options = options
        self.privacy = (
            DifferentialPrivacy(options.privacy, super().configure_train, self.min_train_nodes)  # type: ignore[misc]
            if options.privacy.enabled
            else None
        )
        self.secure = SecureRound(options.secagg, options.round_timeout) if options.secagg.enabled else None
        self._secure_result: SecureResult | None = None
        self.global_arrays: dict[str, np.ndarray] | None = None
        self.final_eval: dict[str, dict[str, float]] = {}
        self.round_info: dict[str, Any] = {}  # per silo: what the aggregation weighed it by
        self.rejected: dict[str, str] = {}
        self.decoded: dict[str, dict[str, np.ndarray]] = {}  # each usable reply deserialized once
        self._labels: dict[int, str] = {}  # node id -> "partition:format", learned from replies
        self._sent: list[Message] = []
        self._pending: dict[str, Any] = {}

    # -- hooks for subclasses -------------------------------------------------------------------

    def persisted_state(self) -> dict[str, Any]:
        """State that must survive a resume (JSON-serialisable); none by default."""
        return {}

    def restore_state(self, state: Mapping[str, Any]) -> None:  # noqa: B027 (a no-op unless overridden)
        """Take back what ``persisted_state`` returned after the round a run resumes from."""

    def resume(self, state: Mapping[str, Any]) -> None:
        """Take back everything persisted after the round a run resumes from (the DP ledger included)."""
        state = dict(state)
        if self.privacy is not None:
            self.privacy.restore(state.pop(PRIVACY, {}))
        self.restore_state(state)

    def report_extra(self) -> dict[str, Any]:
        """What the run's summary and report add beyond the silos' figures: the privacy spent."""
        return {PRIVACY: self.privacy.record()} if self.privacy is not None else {}

    def _aggregate(
        self, server_round: int, replies: list[Message], names: list[str]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """Aggregate screened replies (sorted by silo); Flower's own aggregation by default."""
        return super().aggregate_train(server_round, replies)  # type: ignore[misc]

    # -- rounds ---------------------------------------------------------------------------------

    def _round(self, server_round: int) -> int:
        """The run's round number, also after a resume."""
        return server_round + self.options.round_offset

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        needed = max(self.min_available_nodes, self.min_train_nodes)
        check_simulation_size(grid, needed)
        wait_for_nodes(grid, needed, self.options.node_timeout)
        self.global_arrays = to_numpy(arrays)
        sample = self.privacy.configure_train if self.privacy is not None else super().configure_train  # type: ignore[misc]
        self._sent = protocol.pack_instructions(sample(server_round, arrays, config, grid))
        for msg in self._sent:
            msg.content[protocol.CONFIG][protocol.SERVER_ROUND] = self._round(server_round)
        if self.secure is not None:  # the SecAgg+ stages are this round's train exchange: Flower's loop sends nothing
            self._secure_result = self.secure.run(grid, self._sent, self._round(server_round))
            return []
        return self._sent

    def configure_evaluate(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        o = self.options
        config[protocol.EXPLAIN] = explain_round(self._round(server_round), o.total_rounds, o.explain_every)
        self._sent = protocol.pack_instructions(super().configure_evaluate(server_round, arrays, config, grid))  # type: ignore[misc]
        return self._sent

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        if self.secure is not None:
            silos, arrays, metrics = self._secure_train()
        else:
            silos, arrays, metrics = self._train(server_round, list(replies))
        round_idx = self._round(server_round)
        if arrays is not None:
            self.run.save_parameters(round_idx, arrays.to_torch_state_dict())
        state = dict(self.persisted_state())
        self._pending = {"round": round_idx, "silos": silos, "aggregated": arrays is not None}
        if self.privacy is not None:
            state |= {PRIVACY: self.privacy.state()}
            self._pending[PRIVACY] = self.privacy.record()
        self.run.save_strategy_state(round_idx, state)
        return arrays, metrics

    def _train(
        self, server_round: int, replies: list[Message]
    ) -> tuple[dict[str, dict[str, Any]], ArrayRecord | None, MetricRecord | None]:
        """Per-silo records and the aggregate of a round whose replies carry each silo's update."""
        self._learn_names(replies)
        silos: dict[str, dict[str, Any]] = {}
        for msg in replies:
            entry = silos.setdefault(self.who(msg), {"bytes_sent": reply_bytes(msg)})
            if not msg.has_error():
                entry["train"] = dict(protocol.metrics_of(msg))
        protocol.unpack_replies(replies)  # the wire's packed arrays, named again
        arrays, metrics = self._screen_and_aggregate(server_round, replies)
        for name, reason in self.rejected.items():
            silos.setdefault(name, {})["rejected"] = reason
        for name, info in self.round_info.items():
            silos.setdefault(name, {})["aggregation"] = info
        for name, reason in self._dropped(replies).items():
            silos.setdefault(name, {})["dropped"] = reason
        return silos, arrays, metrics

    def _secure_train(self) -> tuple[dict[str, dict[str, Any]], ArrayRecord | None, None]:
        """Per-silo records and the aggregate of a SecAgg+ round: metrics per silo, one mean for all."""
        result, self.rejected, self.round_info = self._secure_result, {}, {}
        assert result is not None, "configure_train runs the SecAgg+ exchange before aggregate_train"
        for node, (label, _) in result.silos.items():
            self._labels[node] = label
        silos: dict[str, dict[str, Any]] = {
            self._name(node): {"train": metrics, "aggregation": SECURE} for node, (_, metrics) in result.silos.items()
        }
        for node in sorted(set(result.sampled) - set(result.silos)):
            silos[self._name(node)] = {"dropped": NO_MASKED_UPDATE}
        reason = screen(result.mean, self.global_arrays) if result.mean is not None else "SecAgg+ yielded no aggregate"
        if len(result.silos) < max(1, self.min_train_nodes):
            reason = f"only {len(result.silos)} masked updates (< min-train-nodes)"
        if reason is not None:
            self.rejected["round"] = f"{reason}: kept the global model"
            silos["round"] = {"rejected": self.rejected["round"]}
            return silos, None, None
        return silos, ArrayRecord({k: Array(v) for k, v in result.mean.items()}), None

    def _screen_and_aggregate(
        self, server_round: int, replies: list[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        self.round_info, self.rejected, self.decoded = {}, {}, {}
        valid = []
        for msg in replies:
            values = decode(msg)
            reason = values if isinstance(values, str) else screen(values, self.global_arrays)
            if reason is None and self.privacy is not None:
                reason = self.privacy.screen(values, self.global_arrays)
            if reason is None:
                valid.append(msg)
                self.decoded[self.who(msg)] = values
            else:
                self.rejected[self.who(msg)] = reason
        valid.sort(key=self.who)
        if len(valid) < max(1, self.min_train_nodes):
            self.rejected["round"] = f"only {len(valid)} usable replies (< min-train-nodes): kept the global model"
            return None, None
        if self.privacy is not None:
            return self.privacy.release(server_round, valid)
        return self._aggregate(server_round, valid, [self.who(m) for m in valid])

    def aggregate_evaluate(self, server_round: int, replies: Iterable[Message]) -> MetricRecord | None:
        replies = list(replies)
        self._learn_names(replies)
        round_idx = self._round(server_round)
        self._merge_explanations(round_idx, replies)
        record = self._pending if self._pending.get("round") == round_idx else {"round": round_idx, "silos": {}}
        evals = {}
        for msg in replies:
            entry = record["silos"].setdefault(self.who(msg), {})
            if msg.has_error():
                entry["eval_error"] = msg.error.reason
                continue
            evals[self.who(msg)] = entry["eval"] = dict(protocol.metrics_of(msg))
        for name, reason in self._dropped(replies).items():
            record["silos"].setdefault(name, {})["eval_dropped"] = reason
        aggregated = super().aggregate_evaluate(server_round, replies)  # type: ignore[misc]
        self.run.append_round(record)
        self.final_eval = evals or self.final_eval
        figures = "  ".join(f"{name} F1={m['f1']:.3f}" for name, m in sorted(evals.items()))
        failed = ("rejected", "eval_error", "dropped", "eval_dropped")
        dropped = [n for n, e in record["silos"].items() if any(k in e for k in failed)]
        note = f"  (rejected/failed: {', '.join(dropped)})" if dropped else ""
        print(f"[fedlog] round {round_idx}: {figures}{note}", flush=True)
        return aggregated

    def _merge_explanations(self, round_idx: int, replies: list[Message]) -> None:
        clients = {self.who(m): e for m in replies if (e := protocol.explanation_of(m)) is not None}
        if clients:
            merged = merge_explanations(clients, self.options.explain_top_n) | {"round": round_idx}
            self.run.save_json(f"explanations/round-{round_idx:03d}.json", merged)
            plot_explanations(merged, self.run.path / "plots")

    # -- who is who -----------------------------------------------------------------------------

    def _node_of(self, msg: Message) -> int:
        """The node a reply answers for: an error reply the SuperLink made up (node unavailable)
        comes from the SuperLink itself, so map it back through the message it replies to."""
        sent = {m.metadata.message_id: m.metadata.dst_node_id for m in self._sent}
        return sent.get(msg.metadata.reply_to_message_id, msg.metadata.src_node_id)

    def _learn_names(self, replies: list[Message]) -> None:
        """Note each replying node's silo label before any reply is named, so a round names consistently."""
        for msg in replies:
            if not msg.has_error() and protocol.SILO in msg.content.config_records:
                self._labels[self._node_of(msg)] = protocol.silo_name(msg)

    def _name(self, node: int) -> str:
        """A client is its Flower node: ``partition:format`` for people, with ``@node`` appended when
        another node carries the same label (two SuperNodes of one format without partitions)."""
        label = self._labels.get(node)
        if label is None:
            return f"node-{node}"
        shared = sum(other == label for other in self._labels.values()) > 1
        return f"{label}@{node}" if shared else label

    def who(self, msg: Message) -> str:
        """The client a reply speaks for, also for error replies (labels learned in earlier rounds)."""
        return self._name(self._node_of(msg))

    def _dropped(self, replies: list[Message]) -> dict[str, str]:
        """Sampled nodes that sent nothing back before the round timed out."""
        answered = {self._node_of(m) for m in replies}
        missing = {m.metadata.dst_node_id for m in self._sent} - answered
        return {self._name(n): NO_REPLY for n in sorted(missing)}
