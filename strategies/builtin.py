"""Flower's own FedAvg, FedProx and FedAdam with fedlog's screening and records."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flwr.serverapp.strategy import FedAdam, FedAvg, FedProx

from strategies.base import FedlogStrategy


@dataclass
class FedAvgParams:
    """FedAvg has no parameters of its own."""


class FedAvgStrategy(FedlogStrategy, FedAvg):
    Params = FedAvgParams
    dp_refusal = None
    secagg_refusal = None

    def __init__(self, params: FedAvgParams, **kwargs: Any) -> None:
        super().__init__(**kwargs)


@dataclass
class FedProxParams:
    """Run-config keys ``fedprox.*``."""

    mu: float = 0.01  # weight of the proximal term mu/2 ||w - w_global||^2 in local training


class FedProxStrategy(FedlogStrategy, FedProx):
    Params = FedProxParams
    dp_refusal = None
    secagg_refusal = None

    def __init__(self, params: FedProxParams, **kwargs: Any) -> None:
        super().__init__(proximal_mu=params.mu, **kwargs)


@dataclass
class FedAdamParams:
    """Run-config keys ``fedadam.*`` (Reddi et al. 2021). Flower's eta 0.1 wrecks a transformer."""

    eta: float = 1e-3  # server step per round
    eta_l: float = 1e-2  # client learning rate (recorded by Flower, unused by our clients)
    beta_1: float = 0.9
    beta_2: float = 0.99
    tau: float = 1e-3  # adaptivity: larger values make the step less sensitive to small second moments


class FedAdamStrategy(FedlogStrategy, FedAdam):
    Params = FedAdamParams
    dp_refusal = (
        "Flower's wrapper would add its noise after FedAdam's adaptive server step, whose output is no "
        "mean of clipped updates (the step divides by a running second moment), so the noise would not "
        "bound what one silo's update changes"
    )
    secagg_refusal = (
        "fedlog's SecAgg+ round yields the weighted mean of the parameters, and FedAdam's adaptive server step "
        "is not applied to it"
    )

    def __init__(self, params: FedAdamParams, **kwargs: Any) -> None:
        super().__init__(
            eta=params.eta, eta_l=params.eta_l, beta_1=params.beta_1, beta_2=params.beta_2, tau=params.tau, **kwargs
        )
