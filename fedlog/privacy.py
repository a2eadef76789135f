"""Differential privacy settings (run-config keys ``dp.*``) and the privacy accountant.

The server adds Gaussian noise of standard deviation ``noise_multiplier * C / m`` to the unweighted
mean of ``m`` clipped silo updates (Flower's DP wrappers, McMahan et al. 2018): a Gaussian mechanism
with noise multiplier ``noise_multiplier`` per round at the level of one silo (add or remove one
silo's whole update). With adaptive clipping Flower splits that noise between the update and the
count of clipped silos (Andrew et al. 2021) so that together they are worth one Gaussian of the given
multiplier, which is what we account. Each round samples ``fraction-train`` of the silos; we account it as Poisson
sampling with that rate (Flower samples a fixed number, so at rates below 1 this is the usual
approximation; at 1 it is exact) and compose the rounds with Google's RDP accountant
(``dp-accounting``). The rate of a round is the fraction of connected silos it sampled: at least
``fraction-train``, more when ``min-nodes`` forces it. Rounds count whether or not their aggregate
was released (an upper bound).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

OFF = "off"
CLIENT_FIXED = "client-fixed"
SERVER_FIXED = "server-fixed"
CLIENT_ADAPTIVE = "client-adaptive"
SERVER_ADAPTIVE = "server-adaptive"
MODES = (OFF, CLIENT_FIXED, SERVER_FIXED, CLIENT_ADAPTIVE, SERVER_ADAPTIVE)
CLIENT_SIDE = (CLIENT_FIXED, CLIENT_ADAPTIVE)

# Integer RDP orders: exact for the sampled Gaussian (fractional ones need a series that may not converge).
ORDERS = tuple(range(2, 129)) + (192, 256, 512)


@dataclass
class PrivacyParams:
    """Run-config keys ``dp.*``: which of Flower's DP wrappers wraps the strategy, and its noise."""

    mode: str = OFF  # off | client-fixed | server-fixed | client-adaptive | server-adaptive (who clips, how)
    noise_multiplier: float = 1.0  # Gaussian noise std in units of the clipping norm (per silo, per round)
    clipping_norm: float = 1.0  # L2 bound on one silo's update (fixed), or its starting value (adaptive)
    delta: float = 1e-5  # the delta epsilon is reported at
    target_quantile: float = 0.5  # adaptive: fraction of updates the norm should clip
    clip_lr: float = 0.2  # adaptive: geometric step of the clipping norm per round
    clipped_count_stddev: float = 0.0  # adaptive: noise on the clipped count; 0 takes Flower's m/20

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"dp.mode must be one of {', '.join(MODES)}, not {self.mode!r}")
        if self.enabled and (self.noise_multiplier <= 0 or self.clipping_norm <= 0):
            raise ValueError("dp.noise-multiplier and dp.clipping-norm must be positive when dp.mode is on")
        if not 0 < self.delta < 1:
            raise ValueError(f"dp.delta must be in (0, 1), not {self.delta}")

    @property
    def enabled(self) -> bool:
        return self.mode != OFF

    @property
    def client_side(self) -> bool:
        """Clipping happens in the ClientApp (a Flower mod) rather than on the server."""
        return self.mode in CLIENT_SIDE

    @property
    def adaptive(self) -> bool:
        return self.mode in (CLIENT_ADAPTIVE, SERVER_ADAPTIVE)


def epsilon(noise_multiplier: float, sampling_rates: Sequence[float], delta: float) -> float:
    """Epsilon at ``delta`` after one Poisson-sampled Gaussian round per sampling rate (RDP accountant)."""
    if not sampling_rates:
        return 0.0
    if noise_multiplier <= 0:
        return math.inf
    import dp_accounting  # only the server accounts: clients read dp.* without loading it
    from dp_accounting.rdp import RdpAccountant

    accountant = RdpAccountant(orders=ORDERS)
    for rate, rounds in Counter(float(r) for r in sampling_rates).items():
        event = dp_accounting.PoissonSampledDpEvent(rate, dp_accounting.GaussianDpEvent(noise_multiplier))
        accountant.compose(dp_accounting.SelfComposedDpEvent(event, rounds))
    return float(accountant.get_epsilon(delta))
