"""``fedlog detect``: a finished run's model on new logs, batch and live, on the real HDFS sample."""

from __future__ import annotations

import io
import json
import re
import threading
import time
from pathlib import Path

import pytest
from conftest import TINY_DETECTORS, TINY_FASTLOGAD

from fedlog.centralized import train_centralized
from fedlog.cli import main
from fedlog.config import RunSettings, default_run_config
from fedlog.data import chunks
from fedlog.data.loaders import load_silo
from fedlog.data.records import NORMAL
from fedlog.detect import Scorer, detect_files, follow_files
from fedlog.parse.hashing import federation_key
from fedlog.silo import prepare_silo
from fedlog.windows import WindowSpec, WindowStream, build_windows

BLOCK = re.compile(r"blk_-?\d+")


@pytest.fixture(scope="module")
def hdfs_run(shared_data, state_dir, tmp_path_factory) -> Path:
    """A tiny FastLogAD trained centrally on the first 1,000 normal HDFS sessions (2 rounds)."""
    config = default_run_config() | TINY_FASTLOGAD
    config |= {
        "data.silos": f"hdfs={shared_data / 'hdfs' / 'HDFS_2pct.log'}",
        "data.max-lines": 60000,
        "split.train-normal": 1000,
        "num-server-rounds": 2,
        "local-epochs": 2,
        "output-dir": str(tmp_path_factory.mktemp("runs")),
    }
    return train_centralized(config)


@pytest.fixture(scope="module")
def prepared(hdfs_run, state_dir):
    settings = RunSettings.from_flat(json.loads((hdfs_run / "params.json").read_text()))
    return prepare_silo(settings.silo_source(settings.silo_entries[0]), settings.split, federation_key(), state_dir)


def _write_lines(source: Path, numbers: list[int], target: Path) -> None:
    wanted, lines = set(numbers), []
    with source.open() as handle:
        for lineno, line in enumerate(handle, start=1):
            if lineno in wanted:
                lines.append(line)
    target.write_text("".join(lines))


def test_detect_on_the_test_slice_reproduces_the_runs_metrics(hdfs_run, prepared, shared_data, tmp_path) -> None:
    test_lines = sorted(n for w in prepared.split.test for _, n in w.lines)
    slice_file = tmp_path / "test-slice.log"
    _write_lines(shared_data / "hdfs" / "HDFS_2pct.log", test_lines, slice_file)

    scorer = Scorer.from_run(hdfs_run, "hdfs")
    summary = detect_files(scorer, [slice_file], io.StringIO(), shared_data / "hdfs" / "anomaly_label.csv")

    reported = json.loads((hdfs_run / "summary.json").read_text())["silos"]["hdfs"]
    got = summary["silos"]["hdfs"]
    assert summary["windows"] == len(prepared.split.test) == got["examples"]
    for key in ("tp", "fp", "tn", "fn"):
        assert got[key] == reported[key], key
    for key in ("precision", "recall", "f1", "threshold"):
        assert got[key] == pytest.approx(reported[key], abs=1e-9), key
    for key in ("auroc", "aupr"):  # scores equal up to float noise of batch padding; ties may rank differently
        assert got[key] == pytest.approx(reported[key], abs=1e-3), key
    assert summary["load"]["lines_read"] == len(test_lines) and summary["load"]["malformed"] == 0


def test_alerts_on_anomalous_blocks_point_at_their_abnormal_lines(hdfs_run, prepared, shared_data, tmp_path) -> None:
    raw = (shared_data / "hdfs" / "HDFS_2pct.log").read_text().splitlines(keepends=True)[:60000]
    log = tmp_path / "hdfs-head.log"  # the lines the run saw: train, validation and test sessions
    log.write_text("".join(raw))
    out = io.StringIO()
    scorer = Scorer.from_run(hdfs_run, "hdfs", top=2)
    detect_files(scorer, [log], out, shared_data / "hdfs" / "anomaly_label.csv")
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    alerts = [r for r in records if r["anomalous"]]
    assert alerts and all(r["top_lines"] for r in alerts)
    for r in alerts:  # every named line is a real line of that block, one per event type, with its text
        assert len({top["event"] for top in r["top_lines"]}) == len(r["top_lines"])
        for top in r["top_lines"]:
            assert BLOCK.findall(raw[top["line"] - 1])[0] == r["window"]
            assert top["text"] and top["text"] in raw[top["line"] - 1] and top["template"]
    # "abnormal line": an event no normal training session has; at least one true alert leads with one
    normal_events = {e for w in prepared.split.train if w.label == NORMAL for e in w.events}
    leading = [r["top_lines"][0]["event"] for r in alerts if r.get("label") == 1]
    assert any(e not in normal_events for e in leading)


def test_follow_reports_windows_within_a_second_and_survives_rotation(hdfs_run, prepared, shared_data, tmp_path):
    raw = (shared_data / "hdfs" / "HDFS_2pct.log").read_text().splitlines(keepends=True)
    blocks = prepared.split.test[:2]
    live = tmp_path / "live.log"
    live.write_text("")
    scorer = Scorer.from_run(hdfs_run, "hdfs")
    seen: list[tuple[float, dict]] = []
    stop = threading.Event()
    out = io.StringIO()
    summary: dict = {}

    def run() -> None:
        summary.update(follow_files(scorer, [live], out, stop, lambda r: seen.append((time.monotonic(), r)), 0.05, 0.3))

    thread = threading.Thread(target=run)
    thread.start()
    try:
        for i, block in enumerate(blocks):
            if i == 1:  # logrotate: move the file away, start a new one
                live.rename(tmp_path / "live.log.1")
                live.write_text("")
            lines = [raw[n - 1] for _, n in block.lines]
            with live.open("a") as handle:
                handle.write("".join(lines[:-1]) + lines[-1][:10])  # a half-written last line waits...
                handle.flush()
                time.sleep(0.2)
                handle.write(lines[-1][10:])  # ...until its newline arrives
            appended = time.monotonic()
            deadline = appended + 5
            while not any(r["window"] == block.key for _, r in seen) and time.monotonic() < deadline:
                time.sleep(0.01)
            reported = [(t, r) for t, r in seen if r["window"] == block.key]
            assert reported, f"window {block.key} never reported"
            t, record = reported[0]
            assert t - appended < 1.0  # session idle 0.3 s + scoring
            assert record["lines"] == len(lines)
            assert record["first"]["file"].endswith("live.log" if i == 0 else "live.log (rotation 1)")
    finally:
        stop.set()
        thread.join(timeout=30)
    assert summary["windows"] == 2 and summary["load"]["lines_read"] == sum(len(b.lines) for b in blocks)


def test_workers_give_the_output_of_one_worker(hdfs_run, shared_data, tmp_path, monkeypatch) -> None:
    """Reading and masking in worker processes change nothing: windows, scores, alerts and their lines,
    load and parse reports (bad lines included) are those of one worker."""
    raw = (shared_data / "hdfs" / "HDFS_2pct.log").read_bytes().split(b"\n")[:60000]
    raw[30000:30000] = [b"\xff not utf-8 blk_1", b"081399 203615 148 INFO dfs.DataNode: month 13 blk_2"]
    log = tmp_path / "slice.log"
    log.write_bytes(b"\n".join(raw) + b"\n")
    monkeypatch.setattr(chunks, "CHUNK_BYTES", 512 * 1024)  # a dozen chunks to share out
    outputs = []
    for workers in (1, 2):
        out = io.StringIO()
        scorer = Scorer.from_run(hdfs_run, "hdfs", top=2)
        summary = detect_files(scorer, [log], out, shared_data / "hdfs" / "anomaly_label.csv", workers=workers)
        outputs.append((out.getvalue(), summary["load"], summary["parse"], summary["alerts"], summary["silos"]))
    assert outputs[0] == outputs[1]
    _, load, _, alerts, _ = outputs[0]
    assert alerts > 0 and load["malformed"] == 1 and load["undecodable"] == 1 and load["lines_read"] == 60002


def test_wrong_format_is_a_clear_error_not_a_traceback(hdfs_run, shared_data, capsys) -> None:
    bgl = shared_data / "bgl" / "BGL_first10k.log"
    assert main(["detect", "--run", str(hdfs_run), "--format", "hdfs", str(bgl)]) == 2
    err = capsys.readouterr().err
    assert "no line in hdfs format" in err and str(bgl) in err and "Traceback" not in err
    assert main(["detect", "--run", str(hdfs_run), "--format", "bgl", str(bgl)]) == 2
    assert "never saw a bgl silo" in capsys.readouterr().err


def test_a_system_the_run_never_saw_is_calibrated_on_its_first_windows(hdfs_run, shared_data) -> None:
    scorer = Scorer.from_run(hdfs_run, "bgl", calibrate=50)
    summary = detect_files(scorer, [shared_data / "bgl" / "BGL_first10k.log"], io.StringIO())
    assert scorer.parser is not None and scorer.parser.templates  # mined on the calibration windows
    assert summary["calibration_windows"] == 50 and summary["windows"] == 500 - 50
    assert any("new parser" in note for note in summary["notes"])


@pytest.mark.parametrize("spec", ["count:20", "count:20:5", "count:5:8", "time:60", "time:300:60", "time:10:25"])
def test_stream_windows_equal_batch_windows(shared_data, spec) -> None:
    records = load_silo("bgl", shared_data / "bgl" / "BGL_first10k.log").records
    sources = {records[0].source: 0}
    window_spec = WindowSpec.parse(spec)
    batch = build_windows(records, window_spec, sources)
    stream = WindowStream(window_spec)
    live = [w for r in records for w, _ in stream.feed(r, (0, r.lineno), 0.0)] + [w for w, _ in stream.flush()]
    assert sorted((w.rows, w.label) for w in live) == sorted((w.rows, w.label) for w in batch)
    if window_spec.step <= window_spec.size:  # no line left out (larger steps skip lines by design)
        assert {row for w in batch for row in w.rows} == set(range(len(records)))


@pytest.mark.parametrize("detector", sorted(TINY_DETECTORS))
def test_every_detector_scores_and_explains_new_logs_with_its_run(
    detector, synthetic_silos, state_dir, tmp_path, capsys
) -> None:
    """Train one round centrally on a generated BGL silo, then detect on its file: one record per
    window, the run's recorded threshold, and the run's own test figures for the test windows;
    ``fedlog explain`` on the same run names event ids with this client's own templates."""
    config = default_run_config() | TINY_DETECTORS[detector]
    config |= {
        "detector": detector,
        "data.silos": f"bgl={synthetic_silos['bgl']}",
        "num-server-rounds": 1,
        "local-epochs": 1,
        "output-dir": str(tmp_path / "runs"),
    }
    run = train_centralized(config)
    out = io.StringIO()
    summary = detect_files(Scorer.from_run(run, "bgl"), [synthetic_silos["bgl"]], out)
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    reported = json.loads((run / "summary.json").read_text())["silos"]["bgl"]
    assert len(records) == summary["windows"] > 0
    assert summary["threshold"] == pytest.approx(reported["threshold"])
    assert all(r["top_lines"] for r in records if r["anomalous"])

    capsys.readouterr()
    assert main(["explain", "--params", str(run), "--samples", "4", "--top-n", "3"]) == 0
    table = capsys.readouterr().out
    templates = {
        k: v for f in state_dir.glob("silos/bgl-*/templates.json") for k, v in json.loads(f.read_text()).items()
    }
    shown = re.findall(r"^\| \d+ \| ([0-9a-f]{8}) \|", table, flags=re.MULTILINE)
    assert len(shown) == 3 and all(eid in templates for eid in shown), table
    assert any(templates[eid][:20] in table for eid in shown), table  # the local table shows the template text
