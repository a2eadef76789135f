"""Everything that crosses the wire between a client and the server, in one place.

A server instruction carries ``arrays`` (the global model) and ``config``
(server round, local epochs, FedProx's mu, the explain flag). A reply carries
``metrics`` (one MetricRecord, the same keys at every client, with
``num-examples``), ``silo`` (format and partition, for people reading the
records), and as the message needs it ``arrays``, ``histogram`` (hashed event
ids and counts) and ``explanation`` (SHAP numbers over hashed ids). Nothing
else is sent: no template, no raw line, no path. docs/DESIGN.md has the table.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict

from fedlog.explain.shap_ids import IdExplanation

# RecordDict entries
ARRAYS = "arrays"
CONFIG = "config"
METRICS = "metrics"
SILO = "silo"
HISTOGRAM = "histogram"
EXPLANATION = "explanation"

# server -> client config keys
SERVER_ROUND = "server-round"
LOCAL_EPOCHS = "local-epochs"
PROXIMAL_MU = "proximal-mu"  # set by Flower's FedProx
EXPLAIN = "explain"

# client -> server metric keys every strategy may weigh by
NUM_EXAMPLES = "num-examples"
UPDATE_NORM = "update-norm"
VAL_ACCURACY = "val-accuracy"
VAL_LABELLED = "val-labelled"


# -- replies (client side) ---------------------------------------------------------------------


def reply(
    msg: Message,
    silo: str,
    partition: int,
    metrics: Mapping[str, float],
    arrays: ArrayRecord | None = None,
    histogram: Mapping[str, int] | None = None,
    explanation: IdExplanation | None = None,
) -> Message:
    """A client's reply: metrics (with ``num-examples`` from ``examples``), who it is, and the rest."""
    content = RecordDict(
        {
            METRICS: MetricRecord({k: float(v) for k, v in metrics.items()} | {NUM_EXAMPLES: int(metrics["examples"])}),
            SILO: ConfigRecord({"format": silo, "partition": partition}),
        }
    )
    if arrays is not None:
        content[ARRAYS] = arrays
    if histogram is not None:
        content[HISTOGRAM] = histogram_record(histogram)
    if explanation is not None:
        content[EXPLANATION] = explanation_record(explanation)
    return Message(content=content, reply_to=msg)


def histogram_record(hist: Mapping[str, int]) -> ConfigRecord:
    """Hashed ids and their counts, nothing else."""
    ids = sorted(hist)
    return ConfigRecord({"ids": ids, "counts": [int(hist[i]) for i in ids]})


def explanation_record(exp: IdExplanation) -> ConfigRecord:
    return ConfigRecord(
        {
            "ids": list(exp.ids),
            "frequency": [int(v) for v in exp.frequency],
            "windows": [int(v) for v in exp.windows],
            "mean-shap": [float(v) for v in exp.mean_shap],
            "mean-abs-shap": [float(v) for v in exp.mean_abs_shap],
            "values": [float(v) for v in exp.values.ravel()],
            "counts": [int(v) for v in exp.counts.ravel()],
            "base": [float(v) for v in exp.base],
            "samples": int(exp.samples),
        }
    )


# -- reading replies (server side) -------------------------------------------------------------


def silo_name(msg: Message) -> str:
    """The label people read, ``partition:format`` of the reply's silo, or ``node-ID`` for replies without
    one (errors). Not an identity: two nodes may share it; ``FedlogStrategy.who`` keys clients by node."""
    if not msg.has_content() or SILO not in msg.content.config_records:
        return f"node-{msg.metadata.src_node_id}"
    info = msg.content.config_records[SILO]
    return f"{info['partition']}:{info['format']}"


def metrics_of(msg: Message) -> MetricRecord:
    return msg.content.metric_records[METRICS]


def histogram_of(msg: Message) -> dict[str, int]:
    record = msg.content.config_records.get(HISTOGRAM)
    if record is None:
        raise ValueError("the reply carries no event-id histogram")
    return dict(zip(record["ids"], record["counts"]))


def explanation_of(msg: Message) -> dict[str, Any] | None:
    """A reply's explanation decoded to arrays, or None when it sent none."""
    if msg.has_error() or EXPLANATION not in msg.content.config_records:
        return None
    record = msg.content.config_records[EXPLANATION]
    ids = list(record["ids"])
    shape = (int(record["samples"]), len(ids))
    return {
        "ids": ids,
        "frequency": list(record["frequency"]),
        "windows": list(record["windows"]),
        "mean_shap": list(record["mean-shap"]),
        "mean_abs_shap": list(record["mean-abs-shap"]),
        "samples": shape[0],
        "values": np.asarray(record["values"], dtype=float).reshape(shape),
        "counts": np.asarray(record["counts"], dtype=float).reshape(shape),
        "base": np.asarray(record["base"], dtype=float),
    }
