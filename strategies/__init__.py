"""Server strategies, chosen by ``strategy`` in the run config: a registry of plain subclasses,
each with a documented parameter dataclass read from its ``<name>.*`` run-config keys."""

from __future__ import annotations

from typing import Any

from fedlog.config import RunSettings, params_from_config
from fedlog.rundir import RunDirectory
from strategies.base import FedlogStrategy, RunOptions
from strategies.builtin import FedAdamStrategy, FedAvgStrategy, FedProxStrategy
from strategies.fedgradtrace import FedGradTrace
from strategies.quality_softmax import QualitySoftmax
from strategies.refusals import check_combination
from strategies.robust import (
    BulyanStrategy,
    FedMedianStrategy,
    FedTrimmedAvgStrategy,
    KrumStrategy,
    MultiKrumStrategy,
)

STRATEGIES: dict[str, type[FedlogStrategy]] = {
    "fedavg": FedAvgStrategy,
    "fedprox": FedProxStrategy,
    "fedadam": FedAdamStrategy,
    "quality-softmax": QualitySoftmax,
    "fedgradtrace": FedGradTrace,
    "fedmedian": FedMedianStrategy,
    "fedtrimmedavg": FedTrimmedAvgStrategy,
    "krum": KrumStrategy,
    "multikrum": MultiKrumStrategy,
    "bulyan": BulyanStrategy,
}


def build_strategy(settings: RunSettings, run: RunDirectory, round_offset: int = 0, **flower_kwargs: Any) -> Any:
    """The run's strategy: it screens replies and records every round into ``run``.

    ``flower_kwargs`` go to the Flower strategy; by default every round needs
    ``min-nodes`` nodes and trains on ``fraction-train`` of them. A combination with differential
    privacy or SecAgg+ whose claim would not hold raises ``RefusedCombination`` before any round."""
    if settings.strategy not in STRATEGIES:
        raise KeyError(f"unknown strategy {settings.strategy!r}; choose one of {', '.join(STRATEGIES)}")
    check_combination(settings, STRATEGIES)
    cls = STRATEGIES[settings.strategy]
    options = RunOptions(
        total_rounds=settings.num_rounds,
        round_offset=round_offset,
        node_timeout=settings.node_timeout,
        explain_every=settings.explain_every,
        explain_top_n=settings.explain_top_n,
        privacy=settings.privacy,
        secagg=settings.secagg,
        round_timeout=settings.round_timeout,
    )
    nodes = settings.min_nodes
    defaults = {
        "fraction_train": settings.fraction_train,
        "min_train_nodes": nodes,
        "min_evaluate_nodes": nodes,
        "min_available_nodes": nodes,
    }
    params = params_from_config(settings.strategy, cls.Params, settings.raw)
    return cls(params, run=run, options=options, **(defaults | flower_kwargs))
