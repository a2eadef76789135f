"""Client-side clipping for differential privacy: Flower's ``fixedclipping_mod`` or
``adaptiveclipping_mod``, in the path of a train reply only when the run config's ``dp.mode`` asks
for client-side clipping. Mods are fixed when the ClientApp is built, the run config arrives with
each message, hence the dispatch here. The server checks the clipped norm too (strategies/privacy.py):
a client that skips this mod has its reply rejected, not aggregated."""

from __future__ import annotations

from flwr.app import Context, Message
from flwr.clientapp.mod import adaptiveclipping_mod, fixedclipping_mod
from flwr.clientapp.typing import ClientAppCallable

from fedlog.config import params_from_config
from fedlog.privacy import CLIENT_ADAPTIVE, CLIENT_FIXED, PrivacyParams

CLIPPING_MODS = {CLIENT_FIXED: fixedclipping_mod, CLIENT_ADAPTIVE: adaptiveclipping_mod}


def clipping_mod(msg: Message, context: Context, call_next: ClientAppCallable) -> Message:
    """Clip this silo's update to the norm the server sent, when ``dp.mode`` is client-side."""
    mode = params_from_config("dp", PrivacyParams, context.run_config).mode
    if mode not in CLIPPING_MODS or not msg.metadata.message_type.startswith("train"):
        return call_next(msg, context)
    return CLIPPING_MODS[mode](msg, context, call_next)
