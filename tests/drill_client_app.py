"""TEST ONLY: fedlog's ClientApp plus a poisoning drill. ``FEDLOG_DRILL="PARTITION:KIND[:FACTOR]"`` in
the environment of a simulation makes silo PARTITION poison every train reply:

- ``scale``: send global + FACTOR * (its update)            (default FACTOR 100)
- ``sign-flip``: send global - FACTOR * (its update)        (default 10)
- ``random``: send global + Gaussian noise, FACTOR times the norm of its update (default 10)
- ``lie-quality``: send its honest update, but claim val-accuracy FACTOR and num-examples FACTOR
  times what it has (default 1000): QualitySoftmax's self-reported terms

The ``app_with_drills`` fixture builds an app directory whose ClientApp is this one; the project's own
ClientApp has no such hook, so no run config (nor node config) of a normal run can reach it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np
from flwr.app import Context, Message
from flwr.clientapp import ClientApp
from flwr.clientapp.typing import ClientAppCallable

import client_app
from clients.audit import audit_mod
from clients.errors import error_mod
from clients.privacy import clipping_mod
from fedlog import protocol

DRILL_ENV = "FEDLOG_DRILL"
DEFAULT_FACTOR = {"scale": 100.0, "sign-flip": 10.0, "random": 10.0, "lie-quality": 1000.0}


def parse_drill(spec: str) -> tuple[int, str, float]:
    """``PARTITION:KIND[:FACTOR]`` -> (partition, kind, factor)."""
    partition, kind, *factor = spec.split(":")
    if kind not in DEFAULT_FACTOR:
        raise ValueError(f"{DRILL_ENV}={spec!r}: kind must be one of {', '.join(DEFAULT_FACTOR)}")
    return int(partition), kind, float(factor[0]) if factor else DEFAULT_FACTOR[kind]


def poison(
    trained: Mapping[str, np.ndarray], global_: Mapping[str, np.ndarray], kind: str, factor: float, seed: int = 0
) -> dict[str, np.ndarray]:
    """The arrays a poisoned silo sends instead of ``trained`` (lie-quality leaves them alone)."""
    delta = {k: trained[k] - global_[k] for k in global_}
    if kind == "scale":
        return {k: global_[k] + factor * d for k, d in delta.items()}
    if kind == "sign-flip":
        return {k: global_[k] - factor * d for k, d in delta.items()}
    if kind == "random":
        rng = np.random.default_rng(seed)
        noise = {k: rng.standard_normal(v.shape) for k, v in global_.items()}
        scale = factor * _norm(delta) / max(_norm(noise), 1e-12)
        return {k: (global_[k] + scale * n).astype(global_[k].dtype) for k, n in noise.items()}
    return dict(trained)


def _norm(arrays: Mapping[str, np.ndarray]) -> float:
    return float(np.sqrt(sum(np.sum(np.asarray(v, dtype=np.float64) ** 2) for v in arrays.values())))


def drill_mod(msg: Message, context: Context, call_next: ClientAppCallable) -> Message:
    reply = call_next(msg, context)
    spec = os.environ.get(DRILL_ENV)
    if not spec or reply.has_error() or not msg.metadata.message_type.startswith("train"):
        return reply
    partition, kind, factor = parse_drill(spec)
    if int(context.node_config.get("partition-id", 0)) != partition:
        return reply
    if kind == "lie-quality":
        metrics = reply.content[protocol.METRICS]
        metrics[protocol.VAL_ACCURACY] = factor
        metrics[protocol.NUM_EXAMPLES] = int(metrics[protocol.NUM_EXAMPLES]) * int(factor)
        return reply
    global_ = {k: v.numpy() for k, v in protocol.unpack(msg.content[protocol.ARRAYS]).items()}
    trained = {k: v.numpy() for k, v in protocol.unpack(reply.content[protocol.ARRAYS]).items()}
    poisoned = poison(trained, global_, kind, factor, seed=int(msg.content[protocol.CONFIG][protocol.SERVER_ROUND]))
    reply.content[protocol.ARRAYS] = protocol.pack(poisoned)
    return reply


# The drill sits outside clipping (a compromised silo skips it) and inside the audit log (it records what leaves).
app = ClientApp(mods=[audit_mod, drill_mod, error_mod, clipping_mod])
app.train()(client_app.train)
app.evaluate()(client_app.evaluate)
