"""fedlog: federated log anomaly detection on Flower.

The library holds everything that is not Flower glue, in data-flow order:
``data`` (load) -> ``parse`` (Drain3 + keyed event ids) -> ``windows`` ->
``detectors`` (train/score) -> ``metrics`` -> ``rundir`` (records, reports).
"""

__version__ = "0.1.0"
