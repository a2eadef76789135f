"""Flower's Byzantine-robust aggregators with fedlog's screening and records: coordinate-wise
median (Yin et al. 2018), trimmed mean, Krum and Multi-Krum (Blanchard et al. 2017) and Bulyan
(El Mhamdi et al. 2018).

They bound what one poisoned silo can do to the global model without trusting anything the silo
reports about itself, at the price of ignoring ``num-examples`` (median, trimmed mean) or whole
silos (Krum keeps one). Each round records every silo's L2 distance from the aggregate, so a run
shows whom the aggregator followed (Krum's choice sits at 0). The guarantees assume at most
``malicious`` poisoned silos per round; a run with too few silos for that fails at start.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from flwr.app import ArrayRecord, Message, MetricRecord
from flwr.serverapp.strategy import Bulyan, FedMedian, FedTrimmedAvg, Krum, MultiKrum

from strategies.base import FedlogStrategy
from strategies.common import to_numpy

NEEDS_EACH_UPDATE = "it compares the silos' individual updates"


class RobustAggregation(FedlogStrategy):
    """Records each silo's distance from the robust aggregate; refuses DP and SecAgg+."""

    dp_refusal: ClassVar[str | None] = (
        "Flower's DP noise is calibrated for an unweighted mean, which one silo moves by at most "
        "clipping-norm / m; a median, trimmed mean or Krum choice can move by the whole clipping norm, "
        "so the reported epsilon would understate what a silo's update reveals"
    )
    secagg_refusal: ClassVar[str | None] = f"{NEEDS_EACH_UPDATE}, and SecAgg+ shows the server only their sum"

    def _aggregate(
        self, server_round: int, replies: list[Message], names: list[str]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        arrays, metrics = super()._aggregate(server_round, replies, names)
        if arrays is not None:
            result = to_numpy(arrays)
            for name in names:
                client = self.decoded[name]
                gap = sum(float(np.sum((client[k].astype(np.float64) - v) ** 2)) for k, v in result.items())
                self.round_info[name] = {"distance_to_aggregate": gap**0.5}
        return arrays, metrics


def _require_nodes(strategy: str, needed: int, have: int, malicious: int) -> None:
    """Fail at server start rather than skip every round (Flower logs a warning and keeps the model)."""
    if have < needed:
        raise ValueError(
            f"{strategy} with {strategy}.malicious={malicious} needs at least {needed} silos per round, "
            f"but min-nodes is {have}: lower {strategy}.malicious or federate more silos"
        )


@dataclass
class FedMedianParams:
    """The coordinate-wise median has no parameters; it tolerates fewer than half of the silos poisoned."""


class FedMedianStrategy(RobustAggregation, FedMedian):
    Params = FedMedianParams

    def __init__(self, params: FedMedianParams, **kwargs: Any) -> None:
        super().__init__(**kwargs)


@dataclass
class FedTrimmedAvgParams:
    """Run-config keys ``fedtrimmedavg.*``."""

    # Fraction of silos cut at each end, per coordinate (int(beta * m) of them): Flower's 0.2 cuts
    # nothing with four silos, 0.25 cuts one at each end.
    beta: float = 0.25


class FedTrimmedAvgStrategy(RobustAggregation, FedTrimmedAvg):
    Params = FedTrimmedAvgParams

    def __init__(self, params: FedTrimmedAvgParams, **kwargs: Any) -> None:
        super().__init__(beta=params.beta, **kwargs)


@dataclass
class KrumParams:
    """Run-config keys ``krum.*``."""

    malicious: int = 1  # f: silos assumed poisoned; each update is scored by its m - f - 2 nearest


class KrumStrategy(RobustAggregation, Krum):
    Params = KrumParams

    def __init__(self, params: KrumParams, **kwargs: Any) -> None:
        super().__init__(num_malicious_nodes=params.malicious, **kwargs)
        _require_nodes("krum", 2 * params.malicious + 3, self.min_train_nodes, params.malicious)


@dataclass
class MultiKrumParams:
    """Run-config keys ``multikrum.*``."""

    malicious: int = 1  # f, as for Krum
    select: int = 2  # updates averaged (weighted by num-examples) among the best-scored; 1 is Krum


class MultiKrumStrategy(RobustAggregation, MultiKrum):
    Params = MultiKrumParams

    def __init__(self, params: MultiKrumParams, **kwargs: Any) -> None:
        super().__init__(num_malicious_nodes=params.malicious, num_nodes_to_select=params.select, **kwargs)
        needed = max(2 * params.malicious + 3, params.select + params.malicious)
        _require_nodes("multikrum", needed, self.min_train_nodes, params.malicious)


@dataclass
class BulyanParams:
    """Run-config keys ``bulyan.*``."""

    malicious: int = 1  # f: Bulyan needs m >= 4f + 3 silos per round (7 for f = 1)


class BulyanStrategy(RobustAggregation, Bulyan):
    Params = BulyanParams

    def __init__(self, params: BulyanParams, **kwargs: Any) -> None:
        super().__init__(num_malicious_nodes=params.malicious, **kwargs)
        _require_nodes("bulyan", 4 * params.malicious + 3, self.min_train_nodes, params.malicious)
