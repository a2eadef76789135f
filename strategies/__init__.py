"""Server strategies, chosen by name in the run config."""

from __future__ import annotations

from typing import Any

from flwr.serverapp.strategy import FedAvg

from fedlog.rundir import RunDirectory
from strategies.recording import with_recording

STRATEGIES: dict[str, type] = {"fedavg": FedAvg}


def build_strategy(name: str, run: RunDirectory, **kwargs: Any) -> Any:
    if name not in STRATEGIES:
        raise KeyError(f"unknown strategy {name!r}; choose one of {', '.join(STRATEGIES)}")
    return with_recording(STRATEGIES[name], run, **kwargs)
