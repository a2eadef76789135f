"""SecAgg+ for FedAvg and FedProx: a round's train exchange through Flower's ``SecAggPlusWorkflow``,
after which the server holds each silo's metrics and only the weighted mean of their parameters.

Flower 1.42 runs SecAgg+ only on its legacy workflow API: a ``LegacyContext`` whose legacy strategy
picks the clients (``configure_fit``) and receives the result (``aggregate_fit``), with FitIns/FitRes
shaped messages. ``SecureRound`` gives the workflow ``_Collect``, a legacy strategy that sends the
instructions fedlog's strategy already made (translated by fedlog/protocol.py) and keeps what comes
back; ``FedlogStrategy`` records it like any round. Four message exchanges per round instead of one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, RecordDict
from flwr.common import (
    EvaluateIns,
    EvaluateRes,
    FitIns,
    FitRes,
    Parameters,
    Scalar,
    parameters_to_ndarrays,
)
from flwr.server.client_manager import ClientManager
from flwr.server.client_proxy import ClientProxy
from flwr.server.compat import LegacyContext
from flwr.server.compat.grid_client_proxy import GridClientProxy
from flwr.server.strategy import Strategy
from flwr.server.workflow import SecAggPlusWorkflow
from flwr.server.workflow.constant import MAIN_CONFIGS_RECORD, MAIN_PARAMS_RECORD, Key
from flwr.serverapp import Grid

from fedlog import protocol
from fedlog.secagg import SecAggParams
from strategies.common import to_numpy


@dataclass
class SecureResult:
    """What the server learns from one SecAgg+ round."""

    sampled: list[int]  # node ids sent an instruction
    silos: dict[int, tuple[str, dict[str, float]]] = field(default_factory=dict)  # node -> (label, metrics)
    mean: dict[str, np.ndarray] | None = None  # weighted by num-examples, named and typed like the global model


class _Collect(Strategy):
    """The legacy strategy the workflow drives: fedlog's instructions out, the result kept."""

    def __init__(self, instructions: list[Message], grid: Grid) -> None:
        self.instructions, self.grid = instructions, grid
        self.results: list[tuple[ClientProxy, FitRes]] = []

    def configure_fit(
        self, server_round: int, parameters: Parameters, client_manager: ClientManager
    ) -> list[tuple[ClientProxy, FitIns]]:
        run_id = self.grid.run.run_id
        return [
            (GridClientProxy(m.metadata.dst_node_id, self.grid, run_id), protocol.to_fitins(m))
            for m in self.instructions
        ]

    def aggregate_fit(
        self, server_round: int, results: list[tuple[ClientProxy, FitRes]], failures: list
    ) -> tuple[Parameters | None, dict[str, Scalar]]:
        self.results = results  # every FitRes carries the unmasked mean in place of its own parameters
        return None, {}

    def initialize_parameters(self, client_manager: ClientManager) -> Parameters | None:
        return None

    def configure_evaluate(
        self, server_round: int, parameters: Parameters, client_manager: ClientManager
    ) -> list[tuple[ClientProxy, EvaluateIns]]:
        return []

    def aggregate_evaluate(
        self, server_round: int, results: list[tuple[ClientProxy, EvaluateRes]], failures: list
    ) -> tuple[float | None, dict[str, Scalar]]:
        return None, {}

    def evaluate(self, server_round: int, parameters: Parameters) -> tuple[float, dict[str, Scalar]] | None:
        return None


def _as_sent(values: list[np.ndarray], sent: ArrayRecord) -> dict[str, np.ndarray]:
    """The dequantized mean in the layout and dtypes of the arrays the instruction carried (packed on
    the wire), then named like the global model; integers rounded, not truncated."""
    wire = {}
    for (key, array), value in zip(sent.items(), values, strict=True):
        ref = array.numpy()
        value = np.rint(value) if ref.dtype.kind in "iu" else value
        wire[key] = Array(np.asarray(value).reshape(ref.shape).astype(ref.dtype))
    return to_numpy(protocol.unpack(ArrayRecord(wire)))


class SecureRound:
    """Runs one round's train exchange as SecAgg+ (``secagg.*``)."""

    def __init__(self, params: SecAggParams, timeout: float | None) -> None:
        self.workflow = SecAggPlusWorkflow(**params.workflow_kwargs(), timeout=timeout)

    def run(self, grid: Grid, instructions: list[Message], server_round: int) -> SecureResult:
        collect = _Collect(instructions, grid)
        context = LegacyContext(
            Context(run_id=grid.run.run_id, node_id=0, node_config={}, state=RecordDict(), run_config={}),
            strategy=collect,
        )
        context.state.config_records[MAIN_CONFIGS_RECORD] = ConfigRecord({Key.CURRENT_ROUND: server_round})
        if instructions:  # the workflow's setup stage reads the global model here
            context.state.array_records[MAIN_PARAMS_RECORD] = instructions[0].content[protocol.ARRAYS]
        self.workflow(grid, context)
        result = SecureResult(sampled=[m.metadata.dst_node_id for m in instructions])
        for proxy, fitres in collect.results:
            result.silos[int(proxy.node_id)] = protocol.from_fitres(fitres)
        if collect.results:
            sent = instructions[0].content[protocol.ARRAYS]
            result.mean = _as_sent(parameters_to_ndarrays(collect.results[0][1].parameters), sent)
        return result
