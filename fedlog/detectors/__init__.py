"""Detectors: one base class, a registry, one module per family (imported when that detector is built)."""

from fedlog.detectors.base import DETECTORS, Detector, build_detector, detector_class

__all__ = ["DETECTORS", "Detector", "build_detector", "detector_class"]
