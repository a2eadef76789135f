"""LogGAN on a real HDFS slice: it flags anomalous blocks and points at their lines (tiny model, CPU)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import TINY_LOGGAN

from fedlog.detectors import build_detector
from fedlog.detectors.base import LocalContext
from fedlog.detectors.loggan import UNSEEN
from fedlog.parse.hashing import PAD, token_of
from fedlog.silo import SiloSource, prepare_silo
from fedlog.windows import Split, SplitSpec, Window

TINY = TINY_LOGGAN


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def hdfs_slice(shared_data, state_dir):
    """Train on the first 2,000 normal sessions of the real HDFS sample, test on the next 1,000."""
    source = SiloSource.parse(f"hdfs={shared_data / 'hdfs' / 'HDFS_2pct.log'}")
    prepared = prepare_silo(source, SplitSpec(train_normal=2000, val_fraction=0.1), b"test-key", state_dir)
    prepared.split = Split(prepared.split.train, prepared.split.val, prepared.split.test[:1000])
    return prepared


@pytest.fixture(scope="module")
def trained(hdfs_slice):
    det = build_detector("loggan", TINY, seed=1)
    for round_idx in (1, 2):
        stats = det.train_round(hdfs_slice.split.train, round_idx, epochs=1)
    assert np.isfinite(stats["loss"]) and stats["examples"] > 50
    return det


def test_context_of_the_first_events_is_padded() -> None:
    det = build_detector("loggan", TINY, seed=0)
    w = Window("blk", 0, 0, [0, 1, 2, 3], [(0, 1), (0, 2), (0, 3), (0, 4)], 0, ["a1", "b2", None, "a1"])
    a, b, unk = (token_of(e, 512) for e in ("a1", "b2", None))
    assert det._line_keys(w) == [((PAD, PAD, PAD), a), ((PAD, PAD, a), b), ((PAD, a, b), unk), ((a, b, unk), a)]


def test_loggan_flags_anomalous_hdfs_blocks_and_names_their_lines(trained, hdfs_slice, shared_data) -> None:
    split = hdfs_slice.split
    threshold = trained.threshold(split.val, split.train)
    assert trained.threshold_source == "validation-normal"
    metrics = trained.evaluate(split.test, threshold)
    assert metrics["tp"] >= 10 and metrics["precision"] > 0.5, metrics  # measured P 1.0, R 0.85

    flagged = [w for w in split.test if w.label == 1]
    flagged = [(w, s) for w, s in zip(flagged, trained.line_scores(flagged)) if s.max() > threshold]
    assert len(flagged) >= 10
    assert hdfs_slice.sources == [str((shared_data / "hdfs" / "HDFS_2pct.log").resolve())]
    lines = (shared_data / "hdfs" / "HDFS_2pct.log").read_text(encoding="utf-8").splitlines()
    for window, scores in flagged:
        assert len(scores) == len(window.events)
        source, lineno = window.lines[int(np.argmax(scores))]
        assert source == 0 and window.key in lines[lineno - 1]  # a line of that block, in the file


def test_window_score_is_its_worst_line(trained, hdfs_slice) -> None:
    windows = hdfs_slice.split.test[:50]
    per_line = trained.line_scores(windows)
    np.testing.assert_allclose(trained.score(windows), [s.max() for s in per_line])


def test_session_mode_detects_on_real_hdfs(hdfs_slice) -> None:
    split = hdfs_slice.split
    det = build_detector("loggan", TINY | {"loggan.mode": "session"}, seed=1)
    det.train_round(split.train, 1, epochs=1)
    metrics = det.evaluate_split(split)
    assert metrics["auroc"] > 0.8 and metrics["tp"] > 0, metrics


def test_parameters_round_trip(trained, hdfs_slice) -> None:
    other = build_detector("loggan", TINY, seed=7)
    other.load_state(trained.state())
    windows = hdfs_slice.split.test[:50]
    np.testing.assert_allclose(other.score(windows), trained.score(windows), rtol=1e-5)


def test_bad_mode_is_an_error() -> None:
    with pytest.raises(ValueError, match="loggan.mode"):
        build_detector("loggan", {"loggan.mode": "sessions"}, seed=0)


def test_own_negatives_stay_among_the_silos_events_and_other_events_score_as_unseen(hdfs_slice) -> None:
    """loggan.negatives = "own" (what keeps federated LogGAN from pushing other silos' events down):
    negatives come only from the silo's normal events, and a line whose event the silo never saw in
    normal training scores above every line it did see."""
    split = hdfs_slice.split
    det = build_detector("loggan", TINY | {"loggan.negatives": "own"}, seed=1)
    with pytest.raises(RuntimeError, match="bind"):
        det.train_round(split.train, 1, epochs=1)
    det.bind(LocalContext(train=split.train, val=split.val))
    own = det.own
    assert 0 < int(own.sum()) < 100  # a few dozen HDFS events among 4,100 tokens
    mask = det._observed_mask(torch.zeros(256, det.m))
    assert mask[:, ~own].sum() == 0 and mask[:, own].sum() > 0
    det.train_round(split.train, 1, epochs=1)
    per_line = det.line_scores(split.test)
    tokens = [det._tokens(w) for w in split.test]
    foreign = np.concatenate([[not own[t] for t in ts] for ts in tokens])
    scores = np.concatenate(per_line)
    assert foreign.any() and (~foreign).any()
    assert scores[foreign].min() >= UNSEEN > scores[~foreign].max()
