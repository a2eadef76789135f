"""One ``SiloSession`` per process and silo: rounds after the first only load the global parameters."""

from __future__ import annotations

from pathlib import Path

from fedlog.config import RunSettings
from fedlog.session import SiloSession

_SESSIONS: dict[tuple, SiloSession] = {}


def session_for(settings: RunSettings, entry: str, state_dir: Path | None = None) -> SiloSession:
    """The process-wide session of a silo entry under these settings (opened on first use)."""
    key = (entry, tuple(sorted(settings.raw.items())), state_dir)
    if key not in _SESSIONS:
        _SESSIONS[key] = SiloSession.open(settings, entry, state_dir)
    return _SESSIONS[key]
