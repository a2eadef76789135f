"""TEST ONLY: fedlog's ClientApp plus a mod that corrupts the train replies of a node whose node
config says ``fault="nan"`` or ``fault="shape"``, so a real run shows the server rejecting and
recording them. The ``app_with_faults`` fixture builds an app directory that uses this ClientApp;
the project's own app has no such hook, so no run config can reach it."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from flwr.app import Context, Message
from flwr.clientapp import ClientApp
from flwr.clientapp.typing import ClientAppCallable

import client_app
from clients.audit import audit_mod
from clients.errors import error_mod
from fedlog import protocol

FAULTS = ("nan", "shape")


def inject_fault(state: Mapping[str, torch.Tensor], fault: str) -> dict[str, torch.Tensor]:
    """The trained state with its first float tensor made NaN (``nan``) or one element short (``shape``)."""
    if fault not in FAULTS:
        raise ValueError(f"node config fault={fault!r}: expected one of {', '.join(FAULTS)}")
    out = dict(state)
    name = next(k for k, v in out.items() if v.is_floating_point() and v.numel() > 1)
    tensor = out[name]
    out[name] = torch.full_like(tensor, float("nan")) if fault == "nan" else tensor.reshape(-1)[:-1].clone()
    return out


def fault_mod(msg: Message, context: Context, call_next: ClientAppCallable) -> Message:
    reply = call_next(msg, context)
    fault = context.node_config.get("fault")
    if fault and msg.metadata.message_type.startswith("train") and not reply.has_error():
        state = protocol.unpack(reply.content[protocol.ARRAYS]).to_torch_state_dict()
        reply.content[protocol.ARRAYS] = protocol.pack(inject_fault(state, str(fault)))
    return reply


app = ClientApp(mods=[audit_mod, fault_mod, error_mod])  # the audit log sees what really leaves, fault included
app.train()(client_app.train)
app.evaluate()(client_app.evaluate)
