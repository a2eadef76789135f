"""fedlog ClientApp: partition i trains and evaluates on silo i. Flower glue only."""

from __future__ import annotations

from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from clients.audit import audit_mod
from clients.faults import inject_fault
from clients.silo_client import SiloClient, client_for
from fedlog.config import RunSettings
from strategies.common import SILO_RECORD
from strategies.explanations import EXPLAIN_FLAG, EXPLANATION_RECORD, explanation_record
from strategies.quality_softmax import HISTOGRAM_RECORD, histogram_record

app = ClientApp(mods=[audit_mod])  # FEDLOG_AUDIT_DIR: log every reply that leaves


def _client(context: Context) -> tuple[SiloClient, int]:
    """Deployment: node config ``silo = "format=path"``; simulation: partition-id -> silo i."""
    settings = RunSettings.from_flat(context.run_config)
    node = context.node_config
    partition = int(node.get("partition-id", 0))
    if "silo" in node:
        entry = str(node["silo"])
    else:
        entries = settings.silo_entries
        if partition >= len(entries):
            raise ValueError(f"partition {partition} has no silo: data.silos lists {len(entries)}")
        entry = entries[partition]
    return client_for(settings, entry), partition


def _reply(msg: Message, client: SiloClient, partition: int, metrics: dict, arrays: ArrayRecord | None) -> Message:
    content = RecordDict(
        {
            "metrics": MetricRecord(
                {k: float(v) for k, v in metrics.items()} | {"num-examples": int(metrics["examples"])}
            ),
            SILO_RECORD: ConfigRecord({"format": client.name, "partition": partition}),
        }
    )
    if arrays is not None:
        content["arrays"] = arrays
    return Message(content=content, reply_to=msg)


@app.train()
def train(msg: Message, context: Context) -> Message:
    client, partition = _client(context)
    config = msg.content["config"]
    state = msg.content["arrays"].to_torch_state_dict()
    mu = float(config.get("proximal-mu", 0.0))  # set by FedProx
    stats = client.train(state, int(config["server-round"]), int(config["local-epochs"]), mu)
    state = client.detector.state()
    if "fault" in context.node_config:  # TEST HOOK (clients/faults.py): a deliberately corrupt update
        state = inject_fault(state, str(context.node_config["fault"]))
    reply = _reply(msg, client, partition, stats, ArrayRecord(state))
    reply.content[HISTOGRAM_RECORD] = histogram_record(client.histogram)
    return reply


@app.evaluate()
def evaluate(msg: Message, context: Context) -> Message:
    client, partition = _client(context)
    metrics = client.evaluate(msg.content["arrays"].to_torch_state_dict())
    reply = _reply(msg, client, partition, metrics, None)
    if msg.content["config"].get(EXPLAIN_FLAG, False):
        run = context.run_config
        explanation = client.explain(int(run["explain.samples"]), int(run["explain.top-n"]), int(run["seed"]))
        reply.content[EXPLANATION_RECORD] = explanation_record(explanation)
    return reply
