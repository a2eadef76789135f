"""Everything that crosses the wire between a client and the server, in one place.

A server instruction carries ``arrays`` (the global model) and ``config``
(server round, local epochs, FedProx's mu, the explain flag). A reply carries
``metrics`` (one MetricRecord, the same keys at every client, with
``num-examples``), ``silo`` (format and partition, for people reading the
records), and as the message needs it ``arrays``, ``histogram`` (hashed event
ids and counts) and ``explanation`` (SHAP numbers over hashed ids). Nothing
else is sent: no template, no raw line, no path. docs/DESIGN.md has the table.

On the wire ``arrays`` is packed (``pack``): one flat array per dtype, its key
naming the members, shapes and order, so a message moves 1-3 array objects
instead of one per tensor (Flower sends each as its own requests, signed
under node auth). Strategies never see the packed form: ``pack_instructions``
packs what they send, ``unpack_replies`` unpacks what comes back, and the
ClientApp unpacks and packs around its session.

Under SecAgg+ a train exchange speaks Flower's legacy layout instead, because Flower's
``SecAggPlusWorkflow`` and ``secaggplus_mod`` read nothing else: the instruction as ``fitins.*``
(parameters without names, so ``array-names`` rides in the config) and the reply as ``fitres.*``,
whose parameters the mod replaces by their masked form; the silo and the metrics travel in
``fitres.metrics``, without the update's norm and without a histogram. The translations live here too
(the arrays in them stay packed).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
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

# a packed ArrayRecord's keys: PACKED + JSON {"dtype": ..., "arrays": [[position, name, shape], ...]}
PACKED = "fedlog-packed "


# -- the model on the wire: one flat array per dtype ---------------------------------------------


def pack(state: Mapping[str, Any]) -> ArrayRecord:
    """A state dict (torch tensors or numpy arrays) as one flat array per dtype, in first-seen order.
    Values and dtypes are kept exactly (an int buffer stays int); ``unpack`` restores the rest."""
    groups: dict[str, list[tuple[int, str, np.ndarray]]] = {}
    for position, (name, value) in enumerate(state.items()):
        a = value.detach().cpu().numpy() if hasattr(value, "detach") else np.asarray(value)
        groups.setdefault(a.dtype.str, []).append((position, name, a))
    record = {}
    for dtype, members in groups.items():
        layout = {"dtype": dtype, "arrays": [[p, n, list(a.shape)] for p, n, a in members]}
        flat = np.concatenate([a.ravel() for _, _, a in members]).astype(dtype, copy=False)
        record[PACKED + json.dumps(layout, separators=(",", ":"))] = Array(flat)
    return ArrayRecord(record)


def is_packed(record: ArrayRecord) -> bool:
    return len(record) > 0 and all(k.startswith(PACKED) for k in record)


def unpack(record: ArrayRecord) -> ArrayRecord:
    """The named ArrayRecord a packed one carries, in the sender's order; an unpacked record as it is.
    Raises ValueError when the layout and the data disagree."""
    if not any(k.startswith(PACKED) for k in record):
        return record
    if not is_packed(record):
        raise ValueError("an ArrayRecord mixes packed and named arrays")
    out: dict[int, tuple[str, np.ndarray]] = {}
    for key, array in record.items():
        layout = json.loads(key[len(PACKED) :])
        flat = array.numpy()
        shapes = [tuple(int(d) for d in shape) for _, _, shape in layout["arrays"]]
        sizes = [int(np.prod(shape, dtype=np.int64)) for shape in shapes]
        if flat.ndim != 1 or flat.dtype != np.dtype(layout["dtype"]) or flat.size != sum(sizes):
            raise ValueError(f"packed {layout['dtype']} array: {flat.dtype} {flat.shape} does not match its layout")
        offset = 0
        for (position, name, _), shape, size in zip(layout["arrays"], shapes, sizes):
            out[int(position)] = (str(name), flat[offset : offset + size].reshape(shape))
            offset += size
    names = [name for _, (name, _) in sorted(out.items())]
    if sorted(out) != list(range(len(out))) or len(set(names)) != len(names):
        raise ValueError("packed layout: positions or names are not unique")
    return ArrayRecord({name: Array(a) for _, (name, a) in sorted(out.items())})


def pack_instructions(messages: Iterable[Message]) -> list[Message]:
    """The strategy's messages with their ``arrays`` packed (each distinct record packed once)."""
    messages, packed = list(messages), {}
    for msg in messages:
        record = msg.content.array_records.get(ARRAYS)
        if record is not None and not is_packed(record):
            if id(record) not in packed:
                packed[id(record)] = (record, pack({k: v.numpy() for k, v in record.items()}))
            msg.content[ARRAYS] = packed[id(record)][1]
    return messages


def unpack_replies(replies: Iterable[Message]) -> None:
    """Unpack each reply's ``arrays`` in place; a record that fails to unpack stays as it came, and
    screening rejects it (its names are not the global model's)."""
    for msg in replies:
        if not msg.has_error() and ARRAYS in msg.content.array_records:
            try:
                msg.content[ARRAYS] = unpack(msg.content.array_records[ARRAYS])
            except Exception:  # a malformed layout is the client's fault, never a crash of the round
                continue


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
