"""Combinations of strategy, differential privacy and secure aggregation that fedlog refuses at
server start, with the reason, instead of running rounds whose privacy claim would be false."""

from __future__ import annotations

from collections.abc import Mapping

from fedlog.config import RunSettings
from strategies.base import FedlogStrategy

SECAGG_WITH_DP = (
    "fedlog's DP path checks each silo's clipped update on the server (strategies/privacy.py), and SecAgg+ "
    "shows the server only their sum; run one or the other"
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
    if settings.secagg.enabled:
        if cls.secagg_refusal is not None:
            allowed = ", ".join(n for n, c in registry.items() if c.secagg_refusal is None)
            raise RefusedCombination(
                f"secagg.enabled cannot be used with strategy {name!r}: {cls.secagg_refusal}. SecAgg+ works with: "
                f"{allowed}"
            )
        if dp.enabled:
            raise RefusedCombination(f"secagg.enabled cannot be combined with dp.mode={dp.mode!r}: {SECAGG_WITH_DP}")
