"""Secure aggregation settings (run-config keys ``secagg.*``) and the client's range check.

Flower's SecAgg+ (``SecAggPlusWorkflow`` on the server, ``secaggplus_mod`` on the clients) lets the
server learn only the weighted sum of the silos' parameters: each silo multiplies its parameters by
``num-examples / max-weight``, clips them to ``[-clipping-range, clipping-range]``, quantizes them to
``quantization-range`` levels and adds masks that cancel in the sum. Flower clips silently, so a silo
whose parameters or weight fall outside the range would corrupt the aggregate without anyone
noticing; ``check_range`` makes that silo fail with a clear error instead (in its own log; the server
gets a code). The quantization costs precision: each parameter of the aggregate is off by at most
about ``silos * clipping-range / quantization-range / (sum of weights / max-weight)``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np


class SecAggRangeError(ValueError):
    """A silo's parameters or weight do not fit SecAgg+'s clipping range: raise the range, not clip."""


@dataclass
class SecAggParams:
    """Run-config keys ``secagg.*``: Flower's SecAgg+ for FedAvg and FedProx (docs/DESIGN.md 4.8)."""

    enabled: bool = False  # the server sees only the weighted sum of the silos' parameters
    num_shares: float = 1.0  # shares of each silo's key: a fraction of the sampled silos (<= 1) or a count
    reconstruction_threshold: float = 0.67  # shares needed to rebuild a key: a fraction (<= 1) or a count
    clipping_range: float = 8.0  # every weighted parameter must lie in [-range, range] (checked, not clipped)
    quantization_range: int = 4194304  # 2**22 levels over the clipping range
    max_weight: float = 10000.0  # the largest num-examples (training windows) any silo may report

    def __post_init__(self) -> None:
        if self.clipping_range <= 0 or self.max_weight <= 0 or self.quantization_range < 2:
            raise ValueError("secagg.clipping-range, secagg.max-weight and secagg.quantization-range must be positive")

    @staticmethod
    def _share(value: float) -> int | float:
        """Flower reads a float as a fraction and an int as a count."""
        return value if value <= 1 else int(value)

    def workflow_kwargs(self) -> dict[str, int | float]:
        """Keyword arguments of Flower's ``SecAggPlusWorkflow``."""
        return {
            "num_shares": self._share(self.num_shares),
            "reconstruction_threshold": self._share(self.reconstruction_threshold),
            "clipping_range": self.clipping_range,
            "quantization_range": self.quantization_range,
            "max_weight": self.max_weight,
        }


def check_range(arrays: Iterable[np.ndarray], num_examples: int, clipping_range: float, max_weight: float) -> None:
    """Raise SecAggRangeError where Flower's SecAgg+ would clip this silo's weighted parameters."""
    if num_examples > max_weight:
        raise SecAggRangeError(f"num-examples {num_examples} exceeds secagg.max-weight {max_weight:g}")
    ratio = num_examples / max_weight
    largest = max((float(np.abs(a).max()) for a in arrays if a.size), default=0.0)
    if largest * ratio > clipping_range:
        raise SecAggRangeError(
            f"a parameter of magnitude {largest:.4g} weighted by {ratio:.4g} exceeds secagg.clipping-range "
            f"{clipping_range:g}: raise secagg.clipping-range (this detector's statistics are not bounded)"
        )
