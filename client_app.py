"""fedlog ClientApp: partition i trains and evaluates on silo i. Flower glue only."""

from __future__ import annotations

from flwr.app import Context, Message
from flwr.clientapp import ClientApp

from clients.audit import audit_mod
from clients.errors import error_mod
from clients.privacy import clipping_mod
from clients.secagg import secagg_mod
from clients.sessions import session_for
from fedlog import protocol
from fedlog.config import RunSettings
from fedlog.parse.hashing import federation_key
from fedlog.session import SiloSession

# audit_mod (FEDLOG_AUDIT_DIR) logs every reply as it leaves; error_mod turns any exception into a text-free code;
# clipping_mod clips a train reply's update when dp.mode asks for client-side clipping, and passes otherwise;
# secagg_mod runs Flower's SecAgg+ stages when the server started one (secagg.enabled), and passes otherwise.
app = ClientApp(mods=[audit_mod, error_mod, clipping_mod, secagg_mod])


def _session(context: Context) -> tuple[SiloSession, int]:
    """Deployment: node config ``silo = "format=path"``; simulation: partition-id -> silo i."""
    settings = RunSettings.from_flat(context.run_config)
    node = context.node_config
    partition = int(node.get("partition-id", 0))
    if "silo" in node:  # a deployment: the demo key would make every event id guessable
        federation_key(required=True)
        entry = str(node["silo"])
    else:
        entries = settings.silo_entries
        if partition >= len(entries):
            raise ValueError(f"partition {partition} has no silo: data.silos lists {len(entries)}")
        entry = entries[partition]
    return session_for(settings, entry), partition


@app.train()
def train(msg: Message, context: Context) -> Message:
    session, partition = _session(context)
    config = msg.content[protocol.CONFIG]
    stats = session.train(
        protocol.unpack(msg.content[protocol.ARRAYS]).to_torch_state_dict(),
        int(config[protocol.SERVER_ROUND]),
        int(config[protocol.LOCAL_EPOCHS]),
        float(config.get(protocol.PROXIMAL_MU, 0.0)),
    )
    arrays = protocol.pack(session.detector.state())
    return protocol.reply(msg, session.name, partition, stats, arrays=arrays, histogram=session.histogram)


@app.evaluate()
def evaluate(msg: Message, context: Context) -> Message:
    session, partition = _session(context)
    metrics = session.evaluate(protocol.unpack(msg.content[protocol.ARRAYS]).to_torch_state_dict())
    explanation = None
    if msg.content[protocol.CONFIG].get(protocol.EXPLAIN, False):
        s = session.settings
        explanation, _ = session.explain(s.explain_samples, s.explain_top_n, s.seed)
    return protocol.reply(msg, session.name, partition, metrics, explanation=explanation)
