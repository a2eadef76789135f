"""Keyed event ids and the shared token space.

Event id = first 8 hex chars of HMAC-SHA256(federation key, template). The key
is shared by the clients and never by the server, so the same template gets
the same id everywhere while the server cannot confirm a guessed template by
hashing it (which a plain hash would allow).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import logging
import os
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

log = logging.getLogger(__name__)

ID_HEX = 8
DEMO_KEY = b"fedlog-demo-federation-key"
KEY_ENV = "FEDLOG_FEDERATION_KEY"
KEY_FILE_ENV = "FEDLOG_FEDERATION_KEY_FILE"

# Shared token space: special tokens first, then hashed buckets.
PAD, CLS, MASK, UNK = 0, 1, 2, 3
N_SPECIAL = 4


MISSING_KEY_HELP = (
    f"no federation key: set {KEY_FILE_ENV} to the federation.key written by `fedlog certs` "
    f"(or {KEY_ENV} to the key itself) in every SuperNode's environment; the built-in demo key "
    "is for simulations only"
)


class FederationKeyMissing(RuntimeError):
    """A deployed client has no federation key: the demo key would make every id guessable."""


def federation_key(key_file: str | None = None, required: bool = False) -> bytes:
    """The clients' shared secret: a key file, $FEDLOG_FEDERATION_KEY(_FILE), or (simulations only,
    ``required=False``) the public demo key, with a warning."""
    path = key_file or os.environ.get(KEY_FILE_ENV)
    if path:
        key = Path(path).read_bytes().strip()
        if not key:
            raise ValueError(f"{path}: federation key file is empty")
        return key
    if os.environ.get(KEY_ENV):
        return os.environ[KEY_ENV].encode()
    if required:
        raise FederationKeyMissing(MISSING_KEY_HELP)
    _warn_demo_key()
    return DEMO_KEY


@functools.cache
def _warn_demo_key() -> None:
    log.warning("using the built-in demo federation key; set %s for a real deployment", KEY_ENV)


def event_id(key: bytes, template: str) -> str:
    return hmac.new(key, template.encode("utf-8"), hashlib.sha256).hexdigest()[:ID_HEX]


def find_collisions(key: bytes, templates: Iterable[str]) -> dict[str, list[str]]:
    """Ids shared by more than one distinct template (32-bit collisions)."""
    by_id: dict[str, set[str]] = defaultdict(set)
    for template in templates:
        by_id[event_id(key, template)].add(template)
    return {eid: sorted(ts) for eid, ts in by_id.items() if len(ts) > 1}


def token_of(eid: str | None, vocab_buckets: int) -> int:
    """Bucket of an event id in the shared token space; None (unknown event) -> UNK."""
    if eid is None:
        return UNK
    return N_SPECIAL + int(eid, 16) % vocab_buckets
