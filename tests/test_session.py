"""SiloSession: the one way a silo and its detector are put together, and what it promises every
caller (the ClientApp, fedlog train / detect / explain / bench infer, the comparison's modes)."""

from __future__ import annotations

import dataclasses
import math

import pytest
from conftest import TINY_DETECTORS, TINY_FASTLOGAD

from fedlog.config import RunSettings, default_run_config
from fedlog.detectors import DETECTORS
from fedlog.session import SiloSession, new_detector
from fedlog.windows import Split, Window


@dataclasses.dataclass
class SealedWindow(Window):
    """A test window whose label fails the test when anything reads it."""

    def __getattribute__(self, name: str):
        if name == "label":
            raise AssertionError("a test label was read")
        return object.__getattribute__(self, name)


def _sealed(session: SiloSession) -> SiloSession:
    """The same session with test windows whose labels cannot be read (the cached silo is untouched)."""
    split = session.silo.split
    test = [SealedWindow(w.key, w.start, w.end, w.rows, w.lines, 0, w.events) for w in split.test]
    silo = dataclasses.replace(session.silo, split=Split(split.train, split.val, test))
    return dataclasses.replace(session, silo=silo)


def _settings(detector: str, **extra) -> RunSettings:
    return RunSettings.from_flat(default_run_config() | TINY_DETECTORS[detector] | {"detector": detector} | extra)


def test_every_registered_detector_builds_with_its_documented_defaults(tiny_bert) -> None:
    for name in DETECTORS:
        extra = {"ganfl.bert": str(tiny_bert)} if name == "ganfl" else {}
        detector = new_detector(RunSettings.from_flat(default_run_config() | {"detector": name} | extra), "cpu")
        assert detector.state(), name


@pytest.mark.parametrize("detector", sorted(TINY_DETECTORS))
def test_training_thresholds_validation_and_round_selection_never_read_test_labels(
    detector, synthetic_silos, state_dir, one_thread
) -> None:
    session = _sealed(SiloSession.open(_settings(detector), f"bgl={synthetic_silos['bgl']}", state_dir))
    stats = session.train(session.detector.state(), 1, 1)
    assert {"update-norm", "val-accuracy", "val-labelled", "examples"} <= set(stats)
    split = session.silo.split
    session.detector.threshold(split.val, split.train)
    assert math.isfinite(session.detector.selection_score(split))  # how a run picks its round
    assert len(session.detector.score(split.test)) == len(split.test)  # scoring is label-free too
    with pytest.raises(AssertionError, match="test label"):  # the trap works: scoring *metrics* read labels
        session.evaluate()


def test_explanations_choose_windows_without_test_labels(synthetic_silos, state_dir, one_thread) -> None:
    session = _sealed(SiloSession.open(_settings("fastlogad"), f"bgl={synthetic_silos['bgl']}", state_dir))
    list(session.train_locally(1, 1))
    explanation, windows = session.explain(samples=4, top_n=3, seed=0)
    assert explanation.samples == len(windows) == 4


def test_pooled_session_trains_on_every_silo_and_scores_each_at_its_own_threshold(
    synthetic_silos, state_dir, one_thread
) -> None:
    entries = [f"bgl={synthetic_silos['bgl']}", f"spirit={synthetic_silos['spirit']}"]
    settings = RunSettings.from_flat(default_run_config() | TINY_FASTLOGAD)
    pooled, silos = SiloSession.open_pooled(settings, entries, state_dir)
    assert [len(pooled.silo.split.train), len(pooled.silo.split.val)] == [
        sum(len(s.split.train) for s in silos),
        sum(len(s.split.val) for s in silos),
    ]
    assert set(pooled.histogram) == set(silos[0].train_histogram) | set(silos[1].train_histogram)
    list(pooled.train_locally(1, 1))
    thresholds = [pooled.detector.evaluate_split(s.split)["threshold"] for s in silos]
    assert thresholds == [pooled.detector.threshold(s.split.val, s.split.train) for s in silos]


def test_a_silo_with_too_few_normal_validation_windows_is_flagged_in_the_report(
    synthetic_silos, state_dir, tmp_path, one_thread
) -> None:
    from fedlog.centralized import train_centralized

    config = default_run_config() | TINY_FASTLOGAD
    config |= {"split.val-fraction": 0.005, "num-server-rounds": 1, "local-epochs": 1, "output-dir": str(tmp_path)}
    run = train_centralized(config, f"bgl={synthetic_silos['bgl']}")
    report = (run / "report.md").read_text()
    assert "normal validation window(s): its threshold comes from training normals" in report, report
    assert "F1 of flagging all" in report
    config["split.val-fraction"] = 0.4
    report = (train_centralized(config, f"bgl={synthetic_silos['bgl']}") / "report.md").read_text()
    assert "Warnings" not in report, report


def test_the_run_reports_the_round_its_label_free_selection_score_picked(tmp_path) -> None:
    from fedlog.rundir import RunDirectory

    run = RunDirectory.create(tmp_path, "x", {"detector": "fastlogad"})
    figures = {1: (0.90, 0.2), 2: (0.97, 0.9), 3: (0.97, 0.7), 4: (0.95, 0.99)}  # round: (selection, test F1)
    for round_idx, (selection, f1) in figures.items():
        counts = {"tp": 1, "fp": 0, "tn": 9, "fn": 0, "auroc": 1.0, "aupr": 1.0}
        evals = {"0:bgl": {"selection": selection, "examples": 10, "f1": f1} | counts}
        run.append_round({"round": round_idx, "silos": {name: {"eval": m} for name, m in evals.items()}})
    summary = run.finish({"0:bgl": {"f1": 0.99, "tp": 1, "fp": 0, "tn": 9, "fn": 0, "auroc": 1.0, "aupr": 1.0}})
    assert summary["selected_round"] == 3  # the best selection score, the later round on a tie; never test F1
    assert summary["silos"]["0:bgl"]["f1"] == 0.7 and summary["last_round"]["round"] == 4
    assert "round 3's, the round the run selected" in (run.path / "report.md").read_text()


def test_a_supervised_detector_picks_its_round_on_its_labelled_validation_windows(
    synthetic_silos, state_dir, one_thread
) -> None:
    """Pseudo-anomalies say nothing about a classifier trained on real anomalies: the student's selection
    score is the average precision on the labelled validation windows, and moves with their labels
    (validation labels, never test labels); without anomalous validation windows it falls back."""
    from sklearn.metrics import average_precision_score

    session = SiloSession.open(_settings("distilbert"), f"bgl={synthetic_silos['bgl']}", state_dir)
    split, detector = session.silo.split, session.detector
    labels = [w.label for w in split.val]
    assert set(labels) == {0, 1}, "the synthetic silo's validation part holds both kinds"
    scores = detector.score(split.val)
    assert detector.selection_score(split) == pytest.approx(average_precision_score(labels, scores))
    flipped = Split(split.train, [dataclasses.replace(w, label=1 - w.label) for w in split.val], split.test)
    assert detector.selection_score(flipped) == pytest.approx(average_precision_score([1 - y for y in labels], scores))
    normal_only = Split(split.train, [w for w in split.val if w.label == 0], split.test)
    assert detector._labelled_validation(normal_only) is None and math.isfinite(detector.selection_score(normal_only))
    pca = SiloSession.open(_settings("pca"), f"bgl={synthetic_silos['bgl']}", state_dir).detector
    assert pca._labelled_validation(split) is None  # unsupervised detectors never read validation labels


def _flip_test_labels(session: SiloSession) -> SiloSession:
    """The same session with every test label flipped (normal <-> anomalous); training and
    validation windows, and the cached silo, are untouched."""
    split = session.silo.split
    test = [dataclasses.replace(w, label=1 - w.label) for w in split.test]
    silo = dataclasses.replace(session.silo, split=Split(split.train, split.val, test))
    return dataclasses.replace(session, silo=silo)


def _label_free_record(run_dir) -> tuple[list, int]:
    """Per round and silo: threshold, selection score and validation normals; and the selected round."""
    import json

    rounds = [json.loads(line) for line in (run_dir / "rounds.jsonl").read_text().splitlines()]
    figures = [
        {s: (r["eval"]["threshold"], r["eval"]["selection"], r["eval"]["val-normal"]) for s, r in rec["silos"].items()}
        for rec in rounds
    ]
    return figures, json.loads((run_dir / "summary.json").read_text())["selected_round"]


@pytest.mark.parametrize("detector", ["unseen", "pca", "fastlogad"])
def test_poisoned_test_labels_change_test_metrics_but_never_thresholds_selection_or_the_selected_round(
    detector, synthetic_silos, state_dir, tmp_path, monkeypatch, one_thread
) -> None:
    """End to end through `fedlog train`'s path: the same run with every test label flipped must pick
    the same thresholds, selection scores and round, while its test metrics change. Fails if any of
    them reads a test label (the flipped labels reach everything that could read them)."""
    import json

    from fedlog import centralized

    config = default_run_config() | TINY_DETECTORS[detector] | {"detector": detector}
    config |= {"num-server-rounds": 3, "local-epochs": 1, "seed": 7}
    entry = f"bgl={synthetic_silos['bgl']}"
    honest = centralized.train_centralized(config | {"output-dir": str(tmp_path / "honest")}, entry)
    opened = SiloSession.open.__func__
    monkeypatch.setattr(
        centralized.SiloSession,
        "open",
        classmethod(lambda cls, *a, **k: _flip_test_labels(opened(cls, *a, **k))),
    )
    poisoned = centralized.train_centralized(config | {"output-dir": str(tmp_path / "poisoned")}, entry)
    assert _label_free_record(poisoned) == _label_free_record(honest)
    f1 = [json.loads((run / "summary.json").read_text())["overall"]["f1"] for run in (honest, poisoned)]
    assert f1[0] != f1[1], f1  # the flipped labels did reach the metrics


def test_the_real_bgl_sample_in_count_windows_has_no_normal_validation_window_and_the_report_says_so(
    shared_data, state_dir, tmp_path, one_thread
) -> None:
    """The resampled BGL sample in 10-line windows (configs/loghub-4silo.toml): its validation part has
    no normal window, so the report must warn instead of presenting the F1 of a threshold set on it."""
    import json

    from fedlog.centralized import train_centralized

    config = default_run_config() | TINY_DETECTORS["unseen"]
    config |= {"detector": "unseen", "num-server-rounds": 1, "local-epochs": 1, "output-dir": str(tmp_path)}
    config |= {"data.dir": str(shared_data), "window.bgl": "count:10"}
    run = train_centralized(config, "bgl=bgl")
    (silo,) = json.loads((run / "summary.json").read_text())["silos"].values()
    assert silo["val-normal"] == 0
    assert (
        "only 0 normal validation window(s): its threshold comes from training normals"
        in (run / "report.md").read_text()
    )
