"""Every shipped overlay and comparison names only run-config keys the app knows: an unknown key
would stop `fedlog run --config` (and `flwr run --run-config`) before anything runs."""

from __future__ import annotations

import pytest
from conftest import REPO

from fedlog.compare import comparison_rows, load_comparison
from fedlog.config import default_run_config, load_overlay

CONFIGS = sorted((REPO / "configs").glob("*.toml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shipped_configs_use_known_keys(path) -> None:
    known = default_run_config()
    if path.name.startswith("compare-"):
        compare, overrides = load_comparison(path)
        assert comparison_rows(compare, known["detector"])
    else:
        overrides = load_overlay(path)
    assert sorted(set(overrides) - set(known)) == []
