"""Detectors: one base class, a registry, one module per family."""

from fedlog.detectors import (
    deeplog,  # noqa: F401  (registers itself)
    distilbert,  # noqa: F401  (registers itself)
    fastlogad,  # noqa: F401  (registers itself)
    ganfl,  # noqa: F401  (registers itself)
    loggan,  # noqa: F401  (registers itself)
    pca,  # noqa: F401  (registers itself)
    unseen,  # noqa: F401  (registers itself)
)
from fedlog.detectors.base import DETECTORS, Detector, build_detector

__all__ = ["DETECTORS", "Detector", "build_detector"]
