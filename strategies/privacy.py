"""Differential privacy for a fedlog strategy: Flower's DP wrappers around its release step.

Flower's wrappers (``DifferentialPrivacy{Client,Server}Side{Fixed,Adaptive}Clipping``) wrap a whole
strategy. Wrapped from outside, they would clip before fedlog screens a reply (a wrong-shaped reply
crashes the clipping), skip a whole round on one error reply without a record, and the run directory
would keep the model from before the noise. So a fedlog strategy screens and records as usual and hands
only its usable, sorted replies to the wrapper, around ``Release``: the unweighted mean of the
(clipped) updates, which is what the wrapper's noise ``noise_multiplier * C / m`` is calibrated for.
A weighted mean would let a large silo move the model by more than ``C / m``.

With client-side clipping the server cannot clip, but it can check: a reply whose update is longer
than the clipping norm it was sent is rejected before it reaches aggregation. An unchanged model is
rejected in every mode: Flower's clipping divides by the update's norm.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MetricRecord
from flwr.serverapp import Grid
from flwr.serverapp.strategy import (
    DifferentialPrivacyClientSideAdaptiveClipping,
    DifferentialPrivacyClientSideFixedClipping,
    DifferentialPrivacyServerSideAdaptiveClipping,
    DifferentialPrivacyServerSideFixedClipping,
    Strategy,
)
from flwr.serverapp.strategy.strategy_utils import aggregate_metricrecords

from fedlog import privacy, protocol
from fedlog.privacy import PrivacyParams
from strategies.common import to_numpy, weighted_sum_arrays

NORM_SLACK = 1e-5  # relative: float32 round-off of a clipped update's norm

Configure = Callable[[int, ArrayRecord, ConfigRecord, Grid], Iterable[Message]]


class Release(Strategy):
    """What Flower's DP wrapper wraps: the fedlog strategy's own sampling (``configure``) and the
    unweighted mean of the replies it is handed. Evaluation never goes through the wrapper."""

    def __init__(self, configure: Configure) -> None:
        self._configure = configure

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        return self._configure(server_round, arrays, config, grid)

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        replies = list(replies)
        updates = [to_numpy(m.content[protocol.ARRAYS]) for m in replies]
        mean = weighted_sum_arrays(updates, [1.0 / len(updates)] * len(updates))
        metrics = aggregate_metricrecords([m.content for m in replies], protocol.NUM_EXAMPLES)
        return ArrayRecord({k: Array(v) for k, v in mean.items()}), metrics

    def configure_evaluate(self, *args: Any) -> Iterable[Message]:
        raise NotImplementedError("fedlog strategies evaluate without the DP wrapper")

    def aggregate_evaluate(self, *args: Any) -> MetricRecord | None:
        raise NotImplementedError("fedlog strategies evaluate without the DP wrapper")

    def summary(self) -> None:
        """Nothing to log: the wrapper logs its own settings."""


class _TowardsTheTargetQuantile:
    """Adaptive clipping that moves the norm towards the target quantile. Andrew et al. (2021) count
    the *unclipped* updates and step ``C *= exp(-lr * (unclipped share - target))``; Flower 1.42 counts
    the *clipped* ones (``target_clipped_quantile``) but kept that sign, so the more updates are
    clipped, the smaller the norm gets, and it runs off to 0 (tests/test_dp.py shows it). Only the
    sign changes here: the noisy count, and so the privacy, are Flower's."""

    clipping_norm: float
    clip_norm_lr: float
    target_clipped_quantile: float

    def _geometric_update(self, clipped_fraction: float) -> None:
        self.clipping_norm *= math.exp(self.clip_norm_lr * (clipped_fraction - self.target_clipped_quantile))


class ServerSideAdaptiveClipping(_TowardsTheTargetQuantile, DifferentialPrivacyServerSideAdaptiveClipping):
    pass


class ClientSideAdaptiveClipping(_TowardsTheTargetQuantile, DifferentialPrivacyClientSideAdaptiveClipping):
    pass


def _wrapper(params: PrivacyParams, release: Release, num_sampled: int) -> Strategy:
    """The Flower wrapper ``dp.mode`` names."""
    z, norm = params.noise_multiplier, params.clipping_norm
    if not params.adaptive:
        cls = (
            DifferentialPrivacyClientSideFixedClipping
            if params.client_side
            else DifferentialPrivacyServerSideFixedClipping
        )
        return cls(release, z, norm, num_sampled)
    adaptive = ClientSideAdaptiveClipping if params.client_side else ServerSideAdaptiveClipping
    return adaptive(
        release,
        z,
        num_sampled,
        initial_clipping_norm=norm,
        target_clipped_quantile=params.target_quantile,
        clip_norm_lr=params.clip_lr,
        clipped_count_stddev=params.clipped_count_stddev or None,
    )


class DifferentialPrivacy:
    """Flower's DP wrapper for one run, with the sampling rate of every round for the accountant."""

    def __init__(self, params: PrivacyParams, configure: Configure, num_sampled: int) -> None:
        self.params = params
        self.wrapper: Any = _wrapper(params, Release(configure), num_sampled)
        self.rates: list[float] = []  # fraction of the connected silos sampled, per round so far
        self._norm_sent = params.clipping_norm

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> list[Message]:
        self._norm_sent = float(self.wrapper.clipping_norm)  # adaptive clipping moves it after each round
        sent = list(self.wrapper.configure_train(server_round, arrays, config, grid))
        available = max(1, len(list(grid.get_node_ids())))
        self.rates.append(min(1.0, len(sent) / available))
        return sent

    def screen(self, values: dict[str, np.ndarray], reference: dict[str, np.ndarray]) -> str | None:
        """Why an update cannot go to the wrapper: client-side, longer than the norm the silo was sent;
        any mode, no change at all (Flower's clipping divides by the update's norm)."""
        norm = float(np.sqrt(sum(np.sum((values[k].astype(np.float64) - v) ** 2) for k, v in reference.items())))
        if norm == 0:
            return "update norm 0: Flower's DP clipping cannot scale an unchanged model"
        if self.params.client_side and norm > self._norm_sent * (1 + NORM_SLACK):
            return f"update norm {norm:.6g} above the clipping norm {self._norm_sent:.6g} (dp.mode={self.params.mode})"
        return None

    def release(self, server_round: int, replies: list[Message]) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """Clip (server side), average, add noise. The noise is set for the replies actually averaged:
        fewer than were sampled means a larger share per silo, and the same noise multiplier."""
        self.wrapper.num_sampled_clients = len(replies)
        return self.wrapper.aggregate_train(server_round, replies)

    def record(self) -> dict[str, Any]:
        """What the rounds so far have spent, for rounds.jsonl and the report."""
        p = self.params
        return {
            "mode": p.mode,
            "noise_multiplier": p.noise_multiplier,
            "clipping_norm": self._norm_sent,
            "sampling_rate": self.rates[-1] if self.rates else None,
            "delta": p.delta,
            "epsilon": privacy.epsilon(p.noise_multiplier, self.rates, p.delta),
        }

    def state(self) -> dict[str, Any]:
        return {"rates": self.rates, "clipping_norm": float(self.wrapper.clipping_norm)}

    def restore(self, state: dict[str, Any]) -> None:
        self.rates = [float(r) for r in state.get("rates", [])]
        if "clipping_norm" in state:
            self.wrapper.clipping_norm = float(state["clipping_norm"])
