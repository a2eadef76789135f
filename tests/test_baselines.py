"""Baseline detectors (unseen-event and count-range rules, PCA, DeepLog) on real HDFS windows."""

from __future__ import annotations

import dataclasses
from collections import Counter

import numpy as np
import pytest
import torch
from conftest import TINY_DEEPLOG, TINY_PCA, TINY_UNSEEN
from flwr.app import ArrayRecord, MetricRecord, RecordDict
from flwr.serverapp.strategy.strategy_utils import aggregate_arrayrecords

from fedlog.data.records import NORMAL
from fedlog.detectors import build_detector
from fedlog.parse.hashing import token_of
from fedlog.silo import SiloSource, prepare_silo
from fedlog.windows import Split, SplitSpec, Window

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def split(shared_data, state_dir) -> Split:
    """The first 2,000 normal HDFS sessions (10% validation), then 2,000 test sessions."""
    source = SiloSource.parse(f"hdfs={shared_data / 'hdfs' / 'HDFS_2pct.log'}")
    prepared = prepare_silo(source, SplitSpec(train_normal=2000, val_fraction=0.1), b"test-key", state_dir)
    return Split(prepared.split.train, prepared.split.val, prepared.split.test[:2000])


@pytest.fixture(scope="module")
def normal_window(split) -> Window:
    """The first normal test session long enough to fill DeepLog's history."""
    return next(w for w in split.test if w.label == NORMAL and len(w.events) > 12)


def never_seen_id(split: Split, buckets: int) -> str:
    """An event id whose bucket no training window uses (the detectors see buckets, not ids)."""
    used = {token_of(e, buckets) for w in split.train for e in w.events}
    return next(f"{i:08x}" for i in range(1 << 20) if token_of(f"{i:08x}", buckets) not in used)


def planted(window: Window, events: list[str | None]) -> Window:
    return dataclasses.replace(window, events=events)


def flagged(detector, threshold: float, windows: list[Window]) -> list[bool]:
    return [bool(s > threshold) for s in detector.score(windows)]


def fitted(name: str, config: dict, split: Split):
    detector = build_detector(name, config, seed=0)
    detector.train_round(split.train, 1, epochs=1)
    return detector, detector.threshold(split.val, split.train)


@pytest.mark.parametrize("rule", ["unseen", "range"])
def test_rules_flag_never_seen_events_and_unmatched_lines(rule, split, normal_window) -> None:
    detector, threshold = fitted("unseen", TINY_UNSEEN | {"unseen.rule": rule}, split)
    assert detector.threshold_source == "validation-normal" and threshold < 1  # one unseen event alarms
    new = never_seen_id(split, 512)
    events = normal_window.events
    windows = [normal_window, planted(normal_window, events + [new]), planted(normal_window, events + [None])]
    assert flagged(detector, threshold, windows) == [False, True, True]
    assert list(detector.score(windows[1:]) - detector.score(windows[:1])) == [1, 1]  # one planted line each


def test_range_rule_flags_extra_and_missing_counts_that_the_unseen_rule_allows(split, normal_window) -> None:
    unseen, unseen_threshold = fitted("unseen", TINY_UNSEEN, split)
    ranged, threshold = fitted("unseen", TINY_UNSEEN | {"unseen.rule": "range"}, split)
    counts = Counter(normal_window.events)
    event = counts.most_common(1)[0][0]
    most = max(Counter(w.events)[event] for w in split.train if w.label == NORMAL)
    extra = planted(normal_window, normal_window.events + [event] * (most + 1 - counts[event]))
    required = [e for e in counts if all(e in w.events for w in split.train if w.label == NORMAL)]
    missing = planted(normal_window, [e for e in normal_window.events if e != required[0]])
    windows = [normal_window, extra, missing]
    assert flagged(ranged, threshold, windows) == [False, True, True]
    assert flagged(unseen, unseen_threshold, windows) == [False, False, False]


def test_pca_flags_never_seen_rare_and_unmatched_events(split, normal_window) -> None:
    detector, threshold = fitted("pca", TINY_PCA, split)
    assert detector.threshold_source == "validation-normal+q-statistic"
    normal = [w for w in split.train if w.label == NORMAL]
    rare, seen_in = min(Counter(e for w in normal for e in set(w.events)).items(), key=lambda item: item[1])
    assert rare not in normal_window.events and seen_in < len(normal) / 100  # seen, but hardly ever
    events = normal_window.events
    windows = [
        normal_window,
        planted(normal_window, events + [never_seen_id(split, 128)]),
        planted(normal_window, events + [None]),
        planted(normal_window, events + [rare]),
    ]
    assert flagged(detector, threshold, windows) == [False, True, True, True]


def test_fedavg_of_two_clients_pca_statistics_equals_the_pooled_statistics(split) -> None:
    normal = [w for w in split.train if w.label == NORMAL]
    cut = len(normal) // 3  # unequal clients: a plain mean of their states would be wrong
    replies = []
    for part in (normal[:cut], normal[cut:]):
        client = build_detector("pca", TINY_PCA, seed=0)
        stats = client.train_round(part, 1, epochs=1)
        assert stats["examples"] == len(part)
        metrics = MetricRecord({"num-examples": stats["examples"]})
        replies.append(RecordDict({"arrays": ArrayRecord(client.state()), "metrics": metrics}))
    averaged = aggregate_arrayrecords(replies, "num-examples").to_torch_state_dict()  # what FedAvg sends back
    pooled = build_detector("pca", TINY_PCA, seed=0)
    pooled.train_round(normal, 1, epochs=1)
    for key, value in pooled.state().items():
        torch.testing.assert_close(averaged[key], value, rtol=1e-12, atol=1e-12)
    server = build_detector("pca", TINY_PCA, seed=0)
    server.load_state(averaged)
    np.testing.assert_allclose(server.score(split.test[:200]), pooled.score(split.test[:200]), rtol=1e-9, atol=1e-9)


def test_deeplog_flags_a_reordered_step_and_an_unknown_step(split, normal_window) -> None:
    detector = build_detector("deeplog", TINY_DEEPLOG, seed=0)
    for round_idx in (1, 2):
        detector.train_round(split.train, round_idx, epochs=1)
    threshold = detector.threshold(split.val, split.train)
    events = normal_window.events
    windows = [
        normal_window,
        planted(normal_window, [events[-1]] + events[1:-1] + [events[0]]),  # the last step comes first
        planted(normal_window, events[:5] + [None] + events[5:]),
    ]
    assert flagged(detector, threshold, windows) == [False, True, True]


def test_deeplog_rounds_replay_exactly_and_its_parameters_round_trip(split) -> None:
    normal = [w for w in split.train if w.label == NORMAL][:100]
    a, b = (build_detector("deeplog", TINY_DEEPLOG, seed=5) for _ in range(2))
    before = {k: v.clone() for k, v in a.state().items()}  # state() shares storage on CPU
    stats = a.train_round(normal, 1, epochs=1)
    assert np.isfinite(stats["loss"]) and stats["examples"] == 100
    assert any(not torch.equal(before[k], v) for k, v in a.state().items())
    b.train_round(normal, 3, epochs=1)  # another history of parameters and random draws ...
    b.load_state(before)
    b.train_round(normal, 1, epochs=1)  # ... then round 1 again from the same parameters (a resumed run)
    for key, value in a.state().items():
        assert torch.equal(b.state()[key], value), key
    c = build_detector("deeplog", TINY_DEEPLOG, seed=6)
    c.load_state(a.state())
    np.testing.assert_array_equal(c.score(split.test[:50]), a.score(split.test[:50]))


@pytest.mark.parametrize("name", ["unseen", "pca", "deeplog"])
def test_unknown_parameters_are_errors(name) -> None:
    with pytest.raises(KeyError, match=f"unknown {name} parameter"):
        build_detector(name, {f"{name}.no-such-thing": 1}, seed=0)


@pytest.mark.parametrize(
    "config", [{"unseen.rule": "rnage"}, {"pca.normalize": "l3"}, {"pca.threshold-mode": "q"}, {"deeplog.history": 0}]
)
def test_bad_parameter_values_are_errors(config) -> None:
    name = next(iter(config)).split(".")[0]
    with pytest.raises(ValueError, match=name):
        build_detector(name, config, seed=0)
