"""Windows and the chronological split."""

from __future__ import annotations

import pytest

from fedlog.data.loaders import load_silo
from fedlog.data.records import ANOMALY, NORMAL, LogRecord
from fedlog.windows import SplitSpec, WindowSpec, build_windows, chronological_split


def _records(times, labels=None):
    labels = labels or [NORMAL] * len(times)
    return [LogRecord("f.log", i + 1, float(t), f"m{i}", lab) for i, (t, lab) in enumerate(zip(times, labels))]


def test_window_spec_parsing() -> None:
    assert WindowSpec.parse("time:300:60") == WindowSpec("time", 300, 60)
    assert WindowSpec.parse("count:20") == WindowSpec("count", 20, 20)
    assert WindowSpec.parse("time:300:60").overlapping and not WindowSpec.parse("count:20").overlapping
    with pytest.raises(ValueError, match="bad window spec"):
        WindowSpec.parse("sliding:5")


def test_count_windows_cover_every_line_once() -> None:
    recs = _records(range(45), [NORMAL] * 44 + [ANOMALY])
    wins = build_windows(recs, WindowSpec.parse("count:10"), {"f.log": 0})
    assert [len(w.rows) for w in wins] == [10, 10, 10, 10, 5]
    assert sorted(r for w in wins for r in w.rows) == list(range(45))
    assert [w.label for w in wins] == [NORMAL] * 4 + [ANOMALY]
    assert wins[-1].lines[-1] == (0, 45)


def test_time_sliding_windows() -> None:
    recs = _records([0, 30, 70, 130, 200, 290, 310])
    wins = build_windows(recs, WindowSpec.parse("time:120:60"), {"f.log": 0})
    assert [w.rows for w in wins] == [[0, 1, 2], [2, 3], [3, 4], [4, 5], [5, 6]]


def test_sessions_group_by_key_with_session_labels(shared_data) -> None:
    silo = load_silo("hdfs", shared_data / "hdfs" / "HDFS_2pct.log")
    recs = silo.records[:20_000]
    wins = build_windows(recs, WindowSpec.parse("session"), {silo.records[0].source: 0}, silo.session_labels)
    assert len({w.key for w in wins}) == len(wins)
    assert all(w.label == silo.session_labels[w.key] for w in wins)
    assert all(w.key in recs[r].sessions for w in wins[:50] for r in w.rows)
    starts = [w.start for w in wins]
    assert starts == sorted(starts)


def _assert_chronological(split) -> None:
    latest_train = max(w.start for w in split.train)
    assert all(w.start >= latest_train for w in split.val + split.test)
    if split.val:
        assert all(w.start >= max(w.start for w in split.val) for w in split.test)


def test_split_is_chronological_on_real_thunderbird(shared_data) -> None:
    silo = load_silo("thunderbird", shared_data / "thunderbird" / "Thunderbird_19k.log")
    wins = build_windows(silo.records, WindowSpec.parse("count:20"), {silo.records[0].source: 0})
    split = chronological_split(wins, SplitSpec(train_fraction=0.6, val_fraction=0.1), overlapping=False)
    _assert_chronological(split)
    assert len(split.train) + len(split.val) + len(split.test) == len(wins)
    assert len(split.val) == round(0.6 * len(wins) * 0.1)


def test_split_by_normal_count_and_purge_of_overlapping_windows() -> None:
    recs = _records(range(0, 3000, 10))
    wins = build_windows(recs, WindowSpec.parse("time:100:50"), {"f.log": 0})
    split = chronological_split(wins, SplitSpec(train_normal=30, val_fraction=0.2), overlapping=True)
    _assert_chronological(split)
    assert sum(w.label == NORMAL for w in split.train + split.val) + split.purged >= 30
    assert split.purged > 0
    train_rows = {r for w in split.train for r in w.rows}
    assert not train_rows & {r for w in split.val + split.test for r in w.rows}


def test_the_papers_protocol_moves_training_prefix_anomalies_to_test() -> None:
    from fedlog.windows import Window

    windows = [Window(f"s{i}", i, i, [i], [(0, i)], int(i in (1, 5)), []) for i in range(10)]
    chronological = chronological_split(windows, SplitSpec(train_normal=4, val_fraction=0.25), overlapping=False)
    paper = chronological_split(
        windows, SplitSpec(train_normal=4, val_fraction=0.25, anomalies_to_test=True), overlapping=False
    )
    assert [w.key for w in chronological.train + chronological.val] == ["s0", "s1", "s2", "s3", "s4"]
    assert [w.key for w in paper.train + paper.val] == ["s0", "s2", "s3", "s4"]
    assert [w.key for w in paper.test] == ["s1", "s5", "s6", "s7", "s8", "s9"]  # every anomaly is tested
