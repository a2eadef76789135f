"""Shared fixtures: the real Loghub slices in ../shared/data and small generated silos."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("FEDLOG_SHARED_DATA", REPO.parent / "shared" / "data"))

# A FastLogAD small enough for CPU tests (run-config keys).
TINY_FASTLOGAD = {
    "fastlogad.hidden": 32,
    "fastlogad.layers": 1,
    "fastlogad.heads": 2,
    "fastlogad.ffn": 64,
    "fastlogad.buckets": 512,
    "fastlogad.batch-size": 32,
}

# Every detector in a form small enough for CPU tests (run-config keys); tests that must cover all
# detectors (the privacy capture) parametrize over this dict.
TINY_DETECTORS = {"fastlogad": TINY_FASTLOGAD}


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real log data not found at {SHARED_DATA} (set FEDLOG_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def state_dir(tmp_path_factory) -> Path:
    """A client-local state directory shared by the session (parse caches, generated silos)."""
    path = tmp_path_factory.mktemp("fedlog-state")
    os.environ["FEDLOG_STATE_DIR"] = str(path)
    return path


@pytest.fixture(scope="session")
def synthetic_silos(state_dir) -> dict[str, Path]:
    from fedlog.data.synthetic import SyntheticSpec, generate_silos

    return generate_silos(state_dir / "synthetic-test", SyntheticSpec(seed=3, scale=0.5))
