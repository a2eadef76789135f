"""Nothing but codes in errors: a ClientApp failure leaves the silo as a fixed code and a fixed reason.

Flower would send the exception's text to the server, and the strategies record
it in ``rounds.jsonl``; fedlog's messages name file paths, line numbers,
label-file rows and raw tokens. ``error_mod`` catches every exception of the
ClientApp, writes the full text and traceback to the client's own log (the
``fedlog.client`` logger and ``client-errors.log`` in the client's state
directory) and replies with a Flower ``Error`` whose code and reason come from
``CODES`` alone. It sits inside the audit mod, so the audit log shows exactly
what leaves.
"""

from __future__ import annotations

import contextlib
import logging
import traceback
from pathlib import Path

from flwr.app import Context, Error, Message
from flwr.clientapp.typing import ClientAppCallable

from fedlog.parse.hashing import FederationKeyMissing
from fedlog.secagg import SecAggRangeError
from fedlog.silo import default_state_dir

log = logging.getLogger("fedlog.client")

# Flower's own codes are 0-8 (flwr.common.constant.ErrorCode); ours start at 100.
INTERNAL = 100
BAD_INPUT = 101
MISSING_KEY = 102
SECAGG_RANGE = 103
CODES = {
    INTERNAL: "internal error",
    BAD_INPUT: "bad input or configuration",
    MISSING_KEY: "no federation key",
    SECAGG_RANGE: "update outside secagg.clipping-range or secagg.max-weight",
}
ERROR_LOG = "client-errors.log"


def error_code(err: Exception) -> int:
    """The code an exception is reported as: its kind, never its text."""
    if isinstance(err, FederationKeyMissing):
        return MISSING_KEY
    if isinstance(err, SecAggRangeError):
        return SECAGG_RANGE
    if isinstance(err, ValueError | LookupError | OSError):
        return BAD_INPUT  # SiloError, unreadable files, unknown config keys and parameters
    return INTERNAL


def reason(code: int) -> str:
    return f"client error (code {code}, {CODES[code]}): details in the client's own log"


def _log_locally(msg: Message, context: Context, code: int) -> None:
    header = f"run {msg.metadata.run_id} node {context.node_id} {msg.metadata.message_type}: code {code}"
    log.error("%s", header, exc_info=True)
    with contextlib.suppress(OSError):  # an unwritable state directory must not hide the reply
        folder = Path(default_state_dir())
        folder.mkdir(parents=True, exist_ok=True)
        with (folder / ERROR_LOG).open("a") as handle:
            handle.write(f"{header}\n{traceback.format_exc()}\n")


def error_mod(msg: Message, context: Context, call_next: ClientAppCallable) -> Message:
    """Flower client mod: the reply, or a text-free ``Error`` when anything inside raised."""
    try:
        return call_next(msg, context)
    except Exception as err:
        code = error_code(err)
        _log_locally(msg, context, code)
        return Message(Error(code=code, reason=reason(code)), reply_to=msg)
