"""Everything that crosses the wire between a client and the server, in one place.

A server instruction carries ``arrays`` (the global model) and ``config``
(server round, local epochs, FedProx's mu, the explain flag). A reply carries
``metrics`` (one MetricRecord, the same keys at every client, with
``num-examples``), ``silo`` (format and partition, for people reading the
records), and as the message needs it ``arrays``, ``histogram`` (hashed event
ids and counts) and ``explanation`` (SHAP numbers over hashed ids). Nothing
else is sent: no template, no raw line, no path. docs/DESIGN.md has the table.

Under SecAgg+ a train exchange speaks Flower's legacy layout instead, because Flower's
``SecAggPlusWorkflow`` and ``secaggplus_mod`` read nothing else: the instruction as ``fitins.*``
(parameters without names, so ``array-names`` rides in the config) and the reply as ``fitres.*``,
whose parameters the mod replaces by their masked form; the silo and the metrics travel in
``fitres.metrics``, without the update's norm and without a histogram. The translations live here too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from flwr.common import Code, FitIns, FitRes, Status, bytes_to_ndarray
from flwr.compat.common import recorddict_compat as legacy

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
ARRAY_NAMES = "array-names"  # SecAgg+ only: the legacy parameters carry no names

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


# -- SecAgg+: Flower's legacy layout -------------------------------------------------------------

SILO_FORMAT = "silo-format"  # in fitres.metrics, beside the metrics
SILO_PARTITION = "silo-partition"


def to_fitins(instruction: Message) -> FitIns:
    """Server: a train instruction as the FitIns Flower's SecAgg+ workflow sends."""
    arrays = instruction.content[ARRAYS]
    config = dict(instruction.content[CONFIG]) | {ARRAY_NAMES: list(arrays.keys())}
    return FitIns(parameters=legacy.arrayrecord_to_parameters(arrays, keep_input=True), config=config)


def from_fitins(content: RecordDict) -> RecordDict:
    """Client: the ``fitins.*`` records a SecAgg+ stage carries, as the instruction ``train`` reads."""
    config = dict(content.config_records["fitins.config"])
    names = config.pop(ARRAY_NAMES)
    values = legacy.arrayrecord_to_parameters(content.array_records["fitins.parameters"], keep_input=True)
    arrays = {name: Array(bytes_to_ndarray(data)) for name, data in zip(names, values.tensors, strict=True)}
    return RecordDict({ARRAYS: ArrayRecord(arrays), CONFIG: ConfigRecord(config)})


def to_fitres(reply: Message) -> RecordDict:
    """Client: a train reply as the ``fitres.*`` records ``secaggplus_mod`` masks (histogram left out)."""
    metrics = {k: v for k, v in metrics_of(reply).items() if k != UPDATE_NORM}  # the update stays hidden, so its norm
    silo = reply.content.config_records[SILO]
    fitres = FitRes(
        status=Status(code=Code.OK, message=""),
        parameters=legacy.arrayrecord_to_parameters(reply.content[ARRAYS], keep_input=True),
        num_examples=int(metrics[NUM_EXAMPLES]),
        metrics=metrics | {SILO_FORMAT: str(silo["format"]), SILO_PARTITION: int(silo["partition"])},
    )
    return legacy.fitres_to_recorddict(fitres, keep_input=True)


def from_fitres(fitres: FitRes) -> tuple[str, dict[str, float]]:
    """Server: the silo label (``partition:format``) and the metrics of one SecAgg+ reply."""
    metrics = dict(fitres.metrics)
    label = f"{metrics.pop(SILO_PARTITION)}:{metrics.pop(SILO_FORMAT)}"
    return label, {k: float(v) for k, v in metrics.items()}
