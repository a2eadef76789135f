"""An audit log of everything a ClientApp sends to the server.

With ``FEDLOG_AUDIT_DIR`` set on a SuperNode (or the simulation), every reply
is written there before it leaves: one JSON file per message with its
ConfigRecords and MetricRecords verbatim (bytes as base64), ArrayRecord names,
dtypes and shapes, any error text, and the arrays' raw bytes in a ``.bin``
beside it. Operators can read exactly what left the silo; the privacy test
scans the same files for raw log text.
"""

from __future__ import annotations

import base64
import json
import os
import time
from pathlib import Path
from typing import Any

from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord
from flwr.clientapp.typing import ClientAppCallable

AUDIT_ENV = "FEDLOG_AUDIT_DIR"


def _value(value: Any) -> Any:
    if isinstance(value, bytes):
        return {"base64": base64.b64encode(value).decode()}
    if isinstance(value, list):
        return [_value(v) for v in value]
    return value


def describe(msg: Message, blob: list[bytes]) -> dict[str, Any]:
    """A JSON view of the reply; array bytes are appended to ``blob`` (offsets in the view)."""
    out: dict[str, Any] = {"message_type": msg.metadata.message_type, "records": {}}
    if msg.has_error():
        out["error"] = {"code": msg.error.code, "reason": msg.error.reason}
        return out
    offset = 0
    for name, record in msg.content.items():
        if isinstance(record, ArrayRecord):
            arrays = {}
            for key, array in record.items():
                arrays[key] = {
                    "dtype": array.dtype,
                    "shape": list(array.shape),
                    "offset": offset,
                    "size": len(array.data),
                }
                blob.append(array.data)
                offset += len(array.data)
            out["records"][name] = {"type": "ArrayRecord", "arrays": arrays}
        elif isinstance(record, ConfigRecord | MetricRecord):
            items = {k: _value(v) for k, v in record.items()}
            out["records"][name] = {"type": type(record).__name__, "items": items}
    return out


def audit_mod(msg: Message, context: Context, call_next: ClientAppCallable) -> Message:
    """Flower client mod: pass the message on, then log the reply if ``FEDLOG_AUDIT_DIR`` is set."""
    reply = call_next(msg, context)
    folder = os.environ.get(AUDIT_ENV)
    if folder:
        path = Path(folder)
        path.mkdir(parents=True, exist_ok=True)
        stem = path / f"{time.time_ns()}-{os.getpid()}-node{context.node_id}-{reply.metadata.message_type}"
        blob: list[bytes] = []
        view = describe(reply, blob) | {"node_id": context.node_id, "run_id": msg.metadata.run_id}
        stem.with_suffix(".bin").write_bytes(b"".join(blob))
        stem.with_suffix(".json").write_text(json.dumps(view, indent=1))
    return reply
