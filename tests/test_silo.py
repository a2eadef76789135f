"""A silo end to end (load -> window -> split -> mine -> match), its client-local cache and config."""

from __future__ import annotations

import json

import pytest

from fedlog import silo as silo_mod
from fedlog.config import RunSettings, default_run_config
from fedlog.data.loaders import SiloError
from fedlog.silo import SiloSource, prepare_silo
from fedlog.windows import SplitSpec

KEY = b"k"


def test_prepared_silo_reports_and_client_local_state(synthetic_silos, tmp_path) -> None:
    source = SiloSource.parse(f"thunderbird={synthetic_silos['thunderbird']}")
    prepared = prepare_silo(source, SplitSpec(), KEY, tmp_path)
    info = prepared.describe()
    assert info["load"]["records"] == info["load"]["lines_read"]
    assert info["parse"]["matched"] + info["parse"]["unknown"] == info["load"]["records"]
    assert info["split"]["train"]["windows"] > info["split"]["val"]["windows"] > 0
    templates = json.loads((prepared.parser_path.parent / "templates.json").read_text())
    assert set(prepared.train_histogram) <= set(templates)
    train_ids = {e for w in prepared.split.train for e in w.events}
    assert None not in train_ids  # Drain learned from exactly these lines


def test_second_preparation_reads_the_cache_and_a_changed_file_invalidates_it(
    synthetic_silos, tmp_path, monkeypatch
) -> None:
    log = tmp_path / "Spirit.log"
    log.write_bytes((synthetic_silos["spirit"] / "Spirit.log").read_bytes())
    source = SiloSource.parse(f"spirit={log}")
    first = prepare_silo(source, SplitSpec(), KEY, tmp_path / "state")
    silo_mod._MEMORY.clear()
    monkeypatch.setattr(silo_mod, "_build", lambda *a: pytest.fail("re-parsed despite the cache"))
    again = prepare_silo(source, SplitSpec(), KEY, tmp_path / "state")
    assert [w.events for w in again.split.test] == [w.events for w in first.split.test]
    with log.open("a") as handle:
        handle.write(log.read_text().splitlines()[0] + "\n")
    with pytest.raises(pytest.fail.Exception, match="re-parsed"):
        prepare_silo(source, SplitSpec(), KEY, tmp_path / "state")


def test_silo_entries_from_the_run_config(tmp_path) -> None:
    settings = RunSettings.from_flat(default_run_config())
    assert [e.split("=")[0] for e in settings.silo_entries] == ["hdfs", "bgl", "thunderbird", "spirit"]
    real = RunSettings.from_flat(
        default_run_config() | {"data.silos": "bgl=bgl, hadoop=/abs/hadoop", "data.dir": str(tmp_path)}
    )
    bgl = real.silo_source(real.silo_entries[0])
    assert bgl.path == str(tmp_path / "bgl") and bgl.window == "count:20"
    with pytest.raises(SiloError, match="bad silo"):
        SiloSource.parse("syslog=/x")


def test_behaviour_split_deals_hdfs_event_sets_to_silos_and_keeps_every_test_window(shared_data, state_dir) -> None:
    path = shared_data / "hdfs" / "HDFS_2pct.log"
    spec = SplitSpec(train_normal=1000, val_fraction=0.1)
    whole = prepare_silo(SiloSource.parse(f"hdfs={path}", max_lines=60000), spec, KEY, state_dir)
    shares = [
        prepare_silo(SiloSource.parse(f"hdfs={path}#behaviours={k}/4", max_lines=60000), spec, KEY, state_dir)
        for k in range(4)
    ]
    event_sets = [{frozenset(w.events) for w in s.split.train if w.label == 0} for s in shares]
    assert all(event_sets) and sum(map(len, event_sets)) == len(set().union(*event_sets))  # disjoint behaviours
    normal = [w for s in shares for w in s.split.train + s.split.val if w.label == 0]
    prefix = whole.split.train + whole.split.val
    assert sorted(w.key for w in normal) == sorted(w.key for w in prefix if w.label == 0)
    assert all([w.key for w in s.split.test] == [w.key for w in whole.split.test] for s in shares)
    for share in shares:  # validation: the time-ordered tail of the silo's own share, with normals in it
        assert any(w.label == 0 for w in share.split.val)
        assert max(w.start for w in share.split.train) <= min(w.start for w in share.split.val)
    with pytest.raises(SiloError, match="behaviours=K/N"):
        SiloSource.parse(f"hdfs={path}#behaviours=4/4")
