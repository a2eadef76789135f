"""Distilled BERT and id-aligned SHAP explanations, on a generated HDFS-format silo where one
template is planted only in anomalous blocks (tiny models, CPU)."""

from __future__ import annotations

import json
import random
import re

import numpy as np
import pytest
import torch
from conftest import TINY_DISTILBERT
from matplotlib.image import imread

from fedlog import protocol
from fedlog.cli import main
from fedlog.data.records import NORMAL
from fedlog.detectors import build_detector
from fedlog.detectors.base import LocalContext
from fedlog.detectors.distilbert import _TEACHERS
from fedlog.detectors.distill import attributions, count_parameters, student_layers
from fedlog.efficiency import efficiency_rows, format_rows
from fedlog.explain.plots import FILES, plot_explanations
from fedlog.explain.shap_ids import explain_split
from fedlog.session import local_context
from fedlog.silo import SiloSource, prepare_silo
from fedlog.windows import Split, SplitSpec
from strategies.explanations import merge_explanations

PLANTED = "Planted disk failure while flushing"
HEX8 = re.compile(r"[0-9a-f]{8}")
NORMAL_STEPS = (
    "INFO dfs.FSNamesystem: BLOCK* NameSystem.allocateBlock: /user/job{n}/part-{n} {blk}",
    "INFO dfs.DataNode$DataXceiver: Receiving block {blk} src: /10.0.0.{n}:5{n} dest: /10.0.0.{n}:50010",
    "INFO dfs.DataNode$PacketResponder: PacketResponder {n} for block {blk} terminating",
    "INFO dfs.DataNode$PacketResponder: Received block {blk} of size {n} from /10.0.0.{n}",
    "INFO dfs.FSNamesystem: BLOCK* NameSystem.addStoredBlock: blockMap updated: 10.0.0.{n}:50010 is added to {blk}",
)


def write_planted_hdfs(directory, blocks: int = 360, rate: float = 0.12, seed: int = 5) -> None:
    """Normal blocks run the usual steps; an anomalous block also logs the planted line."""
    rng = random.Random(seed)
    lines, labels, t = [], [], 0
    for b in range(blocks):
        blk = f"blk_{10**12 + b}"
        steps = [s for s in NORMAL_STEPS for _ in range(rng.randint(1, 3))]
        anomalous = rng.random() < rate
        if anomalous:
            steps.insert(rng.randint(1, len(steps)), f"WARN dfs.DataNode: {PLANTED} {{blk}} on volume {{n}}")
        labels.append(f"{blk},{'Anomaly' if anomalous else 'Normal'}")
        for step in steps:
            t += 1
            stamp = f"0811{9 + t // 86400:02d} {t // 3600 % 24:02d}{t // 60 % 60:02d}{t % 60:02d}"
            lines.append(f"{stamp} {rng.randint(10, 99)} " + step.format(blk=blk, n=rng.randint(1, 250)))
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "HDFS.log").write_text("\n".join(lines) + "\n")
    (directory / "anomaly_label.csv").write_text("BlockId,Label\n" + "\n".join(labels) + "\n")


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def planted(tmp_path_factory, state_dir):
    root = tmp_path_factory.mktemp("planted")
    write_planted_hdfs(root / "hdfs")
    silo = prepare_silo(SiloSource.parse(f"hdfs={root / 'hdfs'}"), SplitSpec(0.6, 0.2), b"test-key", state_dir)
    templates = json.loads((silo.parser_path.parent / "templates.json").read_text())
    (planted_id,) = [eid for eid, t in templates.items() if PLANTED in t]
    return silo, templates, planted_id


@pytest.fixture(scope="module")
def trained(planted):
    silo, _, _ = planted
    det = build_detector("distilbert", TINY_DISTILBERT | {"distilbert.teacher-epochs": 6}, seed=0)
    det.bind(local_context(silo))
    for round_idx in range(1, 6):  # a tiny random-init BERT sits on the class-prior plateau for ~3 rounds
        stats = det.train_round(silo.split.train, round_idx, epochs=2)
    return det, stats


def test_student_learns_the_planted_anomaly_from_the_teacher(planted, trained) -> None:
    silo, _, _ = planted
    det, stats = trained
    assert stats["teacher"] == 1.0 and np.isfinite(stats["loss"]) and stats["attr"] > 0
    metrics = det.evaluate_split(silo.split)
    assert metrics["teacher-f1"] > 0.9, metrics
    assert metrics["f1"] > 0.8 and metrics["auroc"] > 0.9, metrics  # measured F1 0.86 (P 1.0, R 0.75)
    assert det.threshold_source == "validation-normal+train-anomalies"


def test_planted_template_is_the_top_attribution(planted, trained) -> None:
    silo, templates, planted_id = planted
    det, _ = trained
    explanation, chosen = explain_split(det, silo.split, samples=16, top_n=5, seed=0)
    assert explanation.samples == len(chosen) == 16
    assert explanation.ids[0] == planted_id, [templates[i] for i in explanation.ids]
    top = int(np.argmax(explanation.mean_abs_shap))
    assert explanation.ids[top] == planted_id and explanation.mean_shap[top] > 0
    assert explanation.frequency[0] == sum(w.events.count(planted_id) for w in chosen)

    record = protocol.explanation_record(explanation)
    for key, value in record.items():  # only 8-hex ids and numbers leave the client
        for item in value if isinstance(value, list) else [value]:
            assert isinstance(item, int | float) or HEX8.fullmatch(item), (key, item)
    payload = repr(dict(record))
    assert not any(word in payload for t in templates.values() for word in t.split() if len(word) > 3)


def test_plots_are_real_images(planted, trained, tmp_path, task_identity) -> None:
    from flwr.app import Message, RecordDict

    silo, _, _ = planted
    det, _ = trained
    explanation, _ = explain_split(det, silo.split, samples=8, top_n=4, seed=1)
    instruction = Message(RecordDict(), dst_node_id=1, message_type="evaluate")
    reply = protocol.reply(instruction, "hdfs", 0, {"examples": 8}, explanation=explanation)
    one = protocol.explanation_of(reply)
    merged = merge_explanations({"0:hdfs": one, "1:hdfs": one}, top_n=4) | {"round": 5}
    paths = plot_explanations(merged, tmp_path)
    assert [p.name for p in paths] == list(FILES)
    for path in paths:
        pixels = imread(path)
        assert pixels.shape[0] > 200 and pixels.shape[1] > 300
        assert pixels[..., :3].std() > 0.05, f"{path.name} looks blank"


def test_merge_weights_client_means_by_windows() -> None:
    def client(ids, windows, mean):
        n = max(windows)
        return {
            "ids": ids,
            "frequency": windows,
            "windows": windows,
            "mean_shap": mean,
            "mean_abs_shap": [abs(m) for m in mean],
            "samples": n,
            "values": np.zeros((n, len(ids))),
            "counts": np.zeros((n, len(ids))),
            "base": np.zeros(n),
        }

    merged = merge_explanations(
        {"a": client(["aaaaaaaa", "bbbbbbbb"], [3, 1], [0.4, -0.1]), "b": client(["aaaaaaaa"], [1], [0.0])}, top_n=5
    )
    g = merged["global"]
    assert g["ids"] == ["aaaaaaaa", "bbbbbbbb"]
    assert g["windows"] == [4, 1] and g["mean_shap"][0] == pytest.approx(0.3)
    assert len(merged["rows"]["values"]) == 4 and merged["rows"]["client"] == ["a"] * 3 + ["b"]


def test_student_is_smaller_and_its_parameters_round_trip(planted, trained, tmp_path) -> None:
    silo, _, _ = planted
    det, _ = trained
    assert det.keep == [0] and student_layers(12, 0) == [0, 2, 4, 6, 8, 10] and student_layers(6, 3) == [0, 2, 4]
    assert count_parameters(det.module) < det.teacher_parameters
    torch.save(det.state(), tmp_path / "student.pt")
    other = build_detector("distilbert", TINY_DISTILBERT, seed=9)
    other.load_state(torch.load(tmp_path / "student.pt"))
    windows = silo.split.test[:40]
    np.testing.assert_allclose(det.score(windows), other.score(windows), rtol=1e-5)


def test_teacher_runs_once_and_is_reloaded_from_the_state_dir(planted, trained) -> None:
    silo, _, _ = planted
    det, _ = trained
    saved = list((silo.parser_path.parent / "distilbert").glob("teacher-*.pt"))
    assert len(saved) == 1
    _TEACHERS.clear()  # a fresh client process
    again = build_detector("distilbert", TINY_DISTILBERT | {"distilbert.teacher-epochs": 6}, seed=0)
    again.bind(local_context(silo))
    teacher = again.teacher(silo.split.train, silo.split.val)
    torch.testing.assert_close(teacher.logits, det.teacher(silo.split.train, silo.split.val).logits)


def test_attributions_are_distributions_over_events(trained) -> None:
    det, _ = trained
    tokens, attention = det._batch([[5, 6, 7], [8]])
    _, dist = attributions(det.module, tokens, attention, create_graph=False)
    assert dist[:, 0].eq(0).all() and dist[1, 2:].eq(0).all()
    torch.testing.assert_close(dist.sum(dim=1), torch.ones(2))


def test_client_without_labelled_anomalies_trains_without_a_teacher(planted) -> None:
    silo, _, _ = planted
    normal = [w for w in silo.split.train if w.label == NORMAL]
    split = Split(normal, [w for w in silo.split.val if w.label == NORMAL], silo.split.test)
    det = build_detector("distilbert", TINY_DISTILBERT, seed=0)
    det.bind(LocalContext({}, silo.parser_path.parent, split.train, split.val))
    stats = det.train_round(split.train, 1, epochs=1)
    assert stats["teacher"] == 0.0 and stats["kd"] == 0.0 and np.isfinite(stats["ce"])
    metrics = det.evaluate_split(split)
    assert np.isnan(metrics["teacher-f1"]) and 0.0 <= metrics["recall"] <= 1.0


def test_fedlog_explain_prints_the_planted_template_with_a_raw_line(planted, trained, tmp_path, monkeypatch, capsys):
    silo, _, planted_id = planted
    det, _ = trained
    (tmp_path / "run" / "params").mkdir(parents=True)
    torch.save(det.state(), tmp_path / "run" / "params" / "round-005.pt")
    monkeypatch.setenv("FEDLOG_FEDERATION_KEY", "test-key")
    args = ["explain", "--params", str(tmp_path / "run"), "--silo", f"hdfs={silo.sources[0]}", "--samples", "12"]
    args += ["--top-n", "3", "--set", "detector=distilbert", "--set", "split.train-fraction=0.6"]
    args += ["--set", "split.val-fraction=0.2"] + [a for k, v in TINY_DISTILBERT.items() for a in ("--set", f"{k}={v}")]
    assert main(args) == 0
    out = capsys.readouterr().out
    first_row = next(line for line in out.splitlines() if line.startswith("| 1 |"))
    assert planted_id in first_row and PLANTED in first_row
    example = next(line for line in out.splitlines() if line.strip().startswith(planted_id))
    assert "HDFS.log:" in example and PLANTED in example


def test_efficiency_rows_compare_teacher_and_student(planted, trained) -> None:
    silo, _, _ = planted
    det, _ = trained
    rows = {r["model"]: r for r in efficiency_rows(det, silo.split, silo.split.test[:60])}
    teacher, student = rows["teacher"], rows["student"]
    assert student["parameters"] < teacher["parameters"] and student["bytes_per_round"] < teacher["bytes_per_round"]
    assert 0 < student["gflops_forward"] < teacher["gflops_forward"]
    assert student["windows_per_s"] > 0 and student["peak_train_mb"] > 0 and 0 <= student["f1"] <= 1
    assert rows["student-int8"]["parameters"] == student["parameters"]
    assert "| student |" in format_rows(list(rows.values()), threads=1)
