"""SecAgg+ on the client: Flower's ``secaggplus_mod`` for the messages of a SecAgg+ round, with the
legacy layout it reads translated to and from fedlog's (fedlog/protocol.py).

Mods are fixed when the ClientApp is built and SecAgg+ is a run-config choice, so ``secagg_mod``
passes every other message through. Before the update is masked it checks that Flower's quantization
will not clip it (fedlog/secagg.py): a silo out of range fails, the server gets the code."""

from __future__ import annotations

from flwr.app import Context, Message, MessageType
from flwr.client.mod import secaggplus_mod
from flwr.clientapp.typing import ClientAppCallable
from flwr.common.secure_aggregation.secaggplus_constants import RECORD_KEY_CONFIGS, RECORD_KEY_STATE

from fedlog import protocol
from fedlog.secagg import check_range


def secagg_mod(msg: Message, context: Context, call_next: ClientAppCallable) -> Message:
    """Run Flower's SecAgg+ stages for a message that carries one; pass any other message on."""
    if msg.metadata.message_type != MessageType.TRAIN or RECORD_KEY_CONFIGS not in msg.content.config_records:
        return call_next(msg, context)

    def train(stage: Message, ctx: Context) -> Message:
        reply = call_next(Message(content=protocol.from_fitins(stage.content), metadata=stage.metadata), ctx)
        secagg = ctx.state.config_records[RECORD_KEY_STATE]  # what the server set at the setup stage
        arrays = [a.numpy() for a in reply.content[protocol.ARRAYS].values()]
        examples = int(protocol.metrics_of(reply)[protocol.NUM_EXAMPLES])
        check_range(arrays, examples, float(secagg["clipping_range"]), float(secagg["max_weight"]))
        return Message(protocol.to_fitres(reply), reply_to=stage)

    return secaggplus_mod(msg, context, train)
