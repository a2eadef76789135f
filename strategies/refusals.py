"""Combinations of strategy, differential privacy and secure aggregation that fedlog refuses at
server start, with the reason, instead of running rounds whose privacy claim would be false."""

from __future__ import annotations

from collections.abc import Mapping

from fedlog.config import RunSettings
from strategies.base import FedlogStrategy

SECAGG_UNAVAILABLE = (
    "Flower 1.42 runs SecAgg+ (SecAggPlusWorkflow with secaggplus_mod) only on its legacy workflow API "
    "(a LegacyContext, a legacy strategy's configure_fit/aggregate_fit and FitRes-shaped replies), not on "
    "the Message-API ServerApp and strategies fedlog runs, so fedlog cannot offer it yet"
)


class RefusedCombination(ValueError):
    """The run config asks for a combination whose privacy claim would not hold."""


def check_combination(settings: RunSettings, registry: Mapping[str, type[FedlogStrategy]]) -> None:
    """Raise RefusedCombination naming the keys and the reason; return when the run may start."""
    name, cls = settings.strategy, registry[settings.strategy]
    dp = settings.privacy
    if dp.enabled and cls.dp_refusal is not None:
        allowed = ", ".join(n for n, c in registry.items() if c.dp_refusal is None)
        raise RefusedCombination(
            f"dp.mode={dp.mode!r} cannot wrap strategy {name!r}: {cls.dp_refusal}. "
            f"Differential privacy works with: {allowed}"
        )
    if settings.secagg:
        if cls.secagg_refusal is not None:
            raise RefusedCombination(f"secagg cannot be used with strategy {name!r}: {cls.secagg_refusal}")
        raise RefusedCombination(f"secagg: {SECAGG_UNAVAILABLE}")
