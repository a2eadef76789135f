"""The comparison table and plots, from run directories written the way real runs write them."""

from __future__ import annotations

import math

import pytest

from fedlog.compare import (
    Row,
    comparison_rows,
    floor_of,
    load_comparison,
    markdown,
    plot,
    plot_privacy,
    round_figures,
    summarize,
)
from fedlog.metrics import detection_metrics
from fedlog.rundir import RunDirectory


def _run(tmp_path, name: str, weights: list[float], good: bool) -> dict:
    run = RunDirectory.create(tmp_path, name, {"strategy": name})
    scores = [0.9, 0.1, 0.8, 0.2] if good else [0.1, 0.9, 0.2, 0.8]
    final = {}
    for round_idx in (1, 2):
        silos = {}
        for i, silo in enumerate(("0:hdfs", "1:bgl")):
            metrics = detection_metrics([1, 0, 1, 0], scores, 0.5)
            final[silo] = metrics
            silos[silo] = {
                "train": {"num-examples": 10 * (i + 1), "loss": 1.0},
                "eval": metrics,
                "bytes_sent": 1000,
                "aggregation": {"w": weights[i]},
            }
        run.append_round({"round": round_idx, "silos": silos})
    summary = run.finish(final)
    return {"summary": summary, "rounds": round_figures([run.path]), "wall_time_s": 12.0}


def test_table_and_plots(tmp_path) -> None:
    runs = {
        "fastlogad federated fedavg": [_run(tmp_path, "fedavg", [0.33, 0.67], good=True)],
        "fastlogad federated fedgradtrace": [_run(tmp_path, "fedgradtrace", [0.5, 0.5], good=False)],
        "fastlogad federated fedadam": [{"error": "flower-superlink exited with 1"}],
    }
    table = summarize(runs)
    avg, trace = table["fastlogad federated fedavg"], table["fastlogad federated fedgradtrace"]
    assert avg["overall"]["f1"] == 1.0 and trace["overall"]["f1"] == 0.0
    assert avg["bytes_per_round"] == 2000 and avg["rounds_to_best_f1"] == 1
    assert avg["silos"]["0:hdfs"]["threshold"] == 0.5  # each silo's label-free threshold is in the table
    assert runs["fastlogad federated fedavg"][0]["rounds"][0]["weights"] == {"0:hdfs": 0.33, "1:bgl": 0.67}
    text = markdown(table)
    assert "| fastlogad federated fedavg | 1.000 |" in text and "failed: flower-superlink" in text
    assert "0:hdfs" in text and "thr 0.5" in text
    for path in plot(runs, tmp_path):
        assert path.stat().st_size > 10_000  # a real PNG with content, not an empty canvas
    assert not math.isnan(trace["overall"]["auroc"])


def test_rows_cover_detectors_modes_and_strategies_with_their_floors(tmp_path) -> None:
    spec = tmp_path / "c.toml"
    spec.write_text(
        '[compare]\ndetectors = ["fastlogad", "unseen"]\nmodes = ["local", "federated", "pooled"]\n'
        'strategies = ["fedavg", "fedadam"]\nf1-floor = 0.5\nf1-floors = { fedadam = 0.0, unseen = 0.1 }\n'
    )
    compare, _ = load_comparison(spec)
    rows = comparison_rows(compare, "fastlogad")
    assert [r.name for r in rows[:4]] == [
        "fastlogad local",
        "fastlogad federated fedavg",
        "fastlogad federated fedadam",
        "fastlogad pooled",
    ]
    assert len(rows) == 8 and Row("unseen", "pooled") in rows
    floors = {r.name: floor_of(r, compare) for r in rows}
    assert floors["fastlogad federated fedadam"] == 0.0 and floors["unseen local"] == 0.1
    assert floors["fastlogad pooled"] == 0.5
    spec.write_text('[compare]\nmodes = ["centralised"]\n')
    with pytest.raises(ValueError, match="unknown mode"):
        load_comparison(spec)


def test_variants_repeat_every_row_and_dp_rows_are_tabled_and_plotted_against_epsilon(tmp_path) -> None:
    spec = tmp_path / "c.toml"
    spec.write_text(
        '[compare]\ndetectors = ["fastlogad"]\nstrategies = ["fedavg"]\n[compare.variants]\n"no DP" = {}\n'
        '"z=1" = { dp.mode = "server-adaptive", dp.noise-multiplier = 1.0 }\n'
    )
    compare, _ = load_comparison(spec)
    rows = comparison_rows(compare, "fastlogad")
    assert [r.name for r in rows] == ["fastlogad federated fedavg no DP", "fastlogad federated fedavg z=1"]
    assert compare["variants"]["z=1"] == {"dp.mode": "server-adaptive", "dp.noise-multiplier": 1.0}
    plain, private = _run(tmp_path, "fedavg", [0.5, 0.5], good=True), _run(tmp_path, "dp", [0.5, 0.5], good=False)
    private["summary"]["privacy"] = {"epsilon": 4.5}
    table = summarize({rows[0].name: [plain], rows[1].name: [private]})
    assert math.isnan(table[rows[0].name]["epsilon"]) and table[rows[1].name]["epsilon"] == 4.5
    text = markdown(table)
    assert "epsilon |" in text and text.count("| n/a |") == 1 and "| 4.5 |" in text
    assert plot_privacy(table, tmp_path).stat().st_size > 10_000
    assert plot_privacy({rows[0].name: table[rows[0].name]}, tmp_path) is None
    spec.write_text('[compare]\nstrategies = ["fedavg"]\n[compare.variants]\nbad = 3\n')
    with pytest.raises(ValueError, match="table of run-config keys"):
        load_comparison(spec)
    from fedlog.compare import run_comparison
    from fedlog.config import default_run_config

    spec.write_text('[compare]\nstrategies = ["fedavg"]\n[compare.variants]\ntypo = { dp.noise-multiplyer = 1.0 }\n')
    with pytest.raises(ValueError, match="unknown run-config key.*dp.noise-multiplyer"):  # before any run starts
        run_comparison(tmp_path, default_run_config(), spec, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_local_and_pooled_rows_score_every_silo_under_its_federated_name(synthetic_silos, tmp_path, one_thread) -> None:
    from conftest import TINY_FASTLOGAD

    from fedlog.cli import APP_DIR
    from fedlog.compare import run_row
    from fedlog.config import default_run_config

    silos = f"bgl={synthetic_silos['bgl']}, spirit={synthetic_silos['spirit']}"
    config = default_run_config() | TINY_FASTLOGAD
    config |= {"data.silos": silos, "num-server-rounds": 2, "local-epochs": 1, "output-dir": str(tmp_path)}
    local = run_row(APP_DIR, Row("fastlogad", "local"), config, 2)
    pooled = run_row(APP_DIR, Row("fastlogad", "pooled"), config, 2)
    for result in (local, pooled):
        assert set(result["summary"]["silos"]) == {"0:bgl", "1:spirit"}
        assert [r["round"] for r in result["rounds"]] == [1, 2]
        assert 0.0 <= result["summary"]["overall"]["f1"] <= 1.0
    assert len(local["run_dirs"]) == 2 and len(pooled["run_dirs"]) == 1
    # different training data, same test windows: each silo is scored on exactly the same windows
    for silo in ("0:bgl", "1:spirit"):
        counts = [sum(r["summary"]["silos"][silo][k] for k in ("tp", "fp", "tn", "fn")) for r in (local, pooled)]
        assert counts[0] == counts[1] > 0


def test_a_comparison_cut_short_keeps_the_table_of_the_rows_it_finished(tmp_path, monkeypatch) -> None:
    """The table is written after every row: a long comparison stopped in its second row still leaves
    the first row's figures, marked partial."""
    import json

    from fedlog import compare
    from fedlog.config import default_run_config

    spec = tmp_path / "c.toml"
    spec.write_text('[compare]\ndetectors = ["unseen", "pca"]\nmodes = ["local"]\n')
    finished = _run(tmp_path, "local", [0.5, 0.5], good=True)

    def run_row(app_dir, row, config, n_nodes):
        if row.detector == "pca":
            md = next((tmp_path / "out").glob("compare-*/comparison.md")).read_text()
            assert "Partial: 1 of 2 rows" in md and "| unseen local | 1.000 |" in md
            raise KeyboardInterrupt  # the comparison is stopped here
        return finished

    monkeypatch.setattr(compare, "run_row", run_row)
    with pytest.raises(KeyboardInterrupt):
        compare.run_comparison(tmp_path, default_run_config(), spec, tmp_path / "out")
    (out,) = (tmp_path / "out").glob("compare-*")
    assert json.loads((out / "comparison.json").read_text())["rows_done"] == 1
