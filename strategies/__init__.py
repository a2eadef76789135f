"""Server strategies, chosen by ``strategy`` in the run config.

Every strategy is screened (``common.RobustMixin``) and recorded
(``recording.RecordingMixin``); Flower's built-ins serve the baselines.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flwr.serverapp.strategy import FedAdam, FedAvg, FedProx

from fedlog.rundir import RunDirectory
from strategies.common import RobustMixin
from strategies.explanations import ExplanationMixin
from strategies.fedgradtrace import FedGradTrace
from strategies.quality_softmax import QualitySoftmax
from strategies.recording import RecordingMixin


def _params(config: Mapping[str, Any], prefix: str, names: Mapping[str, str]) -> dict[str, Any]:
    """Run-config keys ``prefix.key`` -> constructor keyword arguments."""
    return {arg: config[f"{prefix}.{key}"] for key, arg in names.items() if f"{prefix}.{key}" in config}


# name -> (Flower strategy class, {run-config key under the name: constructor argument})
STRATEGIES: dict[str, tuple[type, dict[str, str]]] = {
    "fedavg": (FedAvg, {}),
    "fedprox": (FedProx, {"mu": "proximal_mu"}),
    "fedadam": (
        FedAdam,
        {"eta": "eta", "eta-l": "eta_l", "beta-1": "beta_1", "beta-2": "beta_2", "tau": "tau"},
    ),
    "quality-softmax": (
        QualitySoftmax,
        {k: k.replace("-", "_") for k in ("alpha", "beta", "gamma", "temperature", "divergence", "smoothing")},
    ),
    "fedgradtrace": (FedGradTrace, {"lambda": "lam", "history": "history"}),
}


def build_strategy(
    name: str,
    run: RunDirectory,
    config: Mapping[str, Any],
    round_offset: int = 0,
    node_timeout: float = 600.0,
    **kwargs: Any,
) -> Any:
    """An instance of the named strategy that screens replies and records every round into ``run``."""
    if name not in STRATEGIES:
        raise KeyError(f"unknown strategy {name!r}; choose one of {', '.join(STRATEGIES)}")
    base, keys = STRATEGIES[name]
    bases = (RecordingMixin, base) if issubclass(base, RobustMixin) else (RecordingMixin, RobustMixin, base)
    bases = (bases[0], ExplanationMixin, *bases[1:])
    cls = type(f"Recording{base.__name__}", bases, {})
    strategy = cls(**kwargs, **_params(config, name, keys))
    strategy.round_offset = round_offset
    strategy.node_timeout = node_timeout
    strategy.setup_recording(run)
    strategy.explain_every = int(config.get("explain.every", 0))
    strategy.explain_top_n = int(config.get("explain.top-n", 10))
    strategy.total_rounds = int(config.get("num-server-rounds", 0))
    return strategy
