"""Privacy capture: every message the ClientApps send (audit mod, FEDLOG_AUDIT_DIR) is scanned for raw
log text, template text and non-hashed tokens: in a real simulated run, and for every detector in
TINY_DETECTORS through the ClientApp itself."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pytest
from conftest import TINY_DETECTORS, instruction

from fedlog.cli import APP_DIR
from fedlog.config import RunSettings, default_run_config
from fedlog.data.loaders import FORMATS, load_silo
from fedlog.parse.hashing import federation_key
from fedlog.silo import prepare_silo
from fedlog.simulation import run_simulation

WINDOW = 20  # no substring of this many characters of any raw line or template may leave a client
HEX_ID = re.compile(r"^[0-9a-f]{8}$")
KEY = re.compile(r"^[a-z0-9_.-]{1,40}$")
BGL = "bgl/BGL_20k_resampled.log"  # varied: hundreds of templates in the first 2000 lines
MAX_LINES = 2000
EXPLAINED = ("fastlogad", "distilbert")  # the GAN runs skip SHAP's cost


def _windows(texts) -> set[str]:
    out = set()
    for text in texts:
        for i in range(len(text) - WINDOW + 1):
            piece = text[i : i + WINDOW]
            if len(set(piece)) > 3:  # runs like "0000..." or "    " say nothing about a log
                out.add(piece)
    return out


def _strings(value) -> list[str]:
    if isinstance(value, dict):
        if set(value) == {"base64"}:
            return [base64.b64decode(value["base64"]).decode("latin-1")]
        return [s for k, v in value.items() for s in [k, *_strings(v)]]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return [value] if isinstance(value, str) else []


def _used_lines(path: Path) -> list[str]:
    """The physical lines behind the records the client trains and evaluates on."""
    lines = path.read_text(errors="replace").splitlines()
    return [lines[r.lineno - 1] for r in load_silo("bgl", path).records[:MAX_LINES]]


def _config(detector: str, shared_data: Path, tmp_path: Path) -> dict:
    return (
        default_run_config()
        | TINY_DETECTORS[detector]
        | {
            "detector": detector,
            "num-server-rounds": 1,
            "explain.every": 0 if detector in EXPLAINED else -1,
            "min-nodes": 2,
            "local-epochs": 1,
            "data.dir": str(shared_data),
            "data.silos": f"bgl={BGL}, hdfs=synthetic",
            "data.max-lines": MAX_LINES,
            "data.synthetic-scale": 0.2,
            "output-dir": str(tmp_path / "runs"),
        }
    )


def _capture(tmp_path: Path, monkeypatch) -> Path:
    audit = tmp_path / "audit"
    monkeypatch.setenv("FEDLOG_AUDIT_DIR", str(audit))
    monkeypatch.setenv("FEDLOG_STATE_DIR", str(tmp_path / "state"))  # this run's parse caches and templates
    return audit


def _silos(config: dict) -> list:
    """The clients' prepared silos (their templates and source files), as the clients prepared them."""
    settings = RunSettings.from_flat(config)
    return [prepare_silo(settings.silo_source(e), settings.split, federation_key()) for e in settings.silo_entries]


def assert_nothing_but_ids_and_numbers_left(audit: Path, silos: list) -> None:
    """Scan every audited reply for any 20-character piece of a raw line or a template."""
    views = [json.loads(p.read_text()) for p in sorted(audit.glob("*.json"))]
    assert len({(v["message_type"], v["node_id"]) for v in views}) == 4  # train + evaluate, 2 nodes
    templates = [t for silo in silos for t in silo.templates.values()]
    assert len(templates) > 20
    raw = []
    for silo in silos:
        for source in map(Path, silo.sources):
            raw += _used_lines(source) if silo.fmt == "bgl" else source.read_text().splitlines()
    assert len(raw) > MAX_LINES
    forbidden = _windows(raw) | _windows(templates)

    captured = [s for v in views for s in _strings(v)]
    captured += [p.read_bytes().decode("latin-1") for p in audit.glob("*.bin")]
    for text in captured:
        leaks = {text[i : i + WINDOW] for i in range(len(text) - WINDOW + 1)} & forbidden
        assert not leaks, f"raw log text left a client: {sorted(leaks)[:3]}"
        assert text not in templates
    for view in views:
        assert "error" not in view, view["error"]
        for name, record in view["records"].items():
            assert KEY.match(name)
            if record["type"] == "ConfigRecord":
                for key, value in record["items"].items():
                    assert KEY.match(key) or HEX_ID.match(key), key
                    for item in value if isinstance(value, list) else [value]:
                        ok = isinstance(item, int | float) or HEX_ID.match(item) or item in FORMATS
                        assert ok, f"{name}.{key}: {item!r} is neither a hashed id, a number nor a format name"
            elif record["type"] == "MetricRecord":
                assert all(isinstance(v, int | float | list) for v in record["items"].values())


@pytest.mark.slow
def test_a_real_run_sends_no_raw_text_templates_or_plain_tokens(tmp_path, shared_data, monkeypatch) -> None:
    audit = _capture(tmp_path, monkeypatch)
    config = _config("fastlogad", shared_data, tmp_path)
    run_simulation(APP_DIR, config, num_supernodes=2, stream=False, timeout=600)
    assert_nothing_but_ids_and_numbers_left(audit, _silos(config))


@pytest.mark.parametrize("detector", sorted(set(TINY_DETECTORS) - {"fastlogad"}))
def test_every_detectors_replies_carry_no_raw_text_templates_or_plain_tokens(
    detector, tmp_path, shared_data, monkeypatch, task_identity, one_thread
) -> None:
    """The same scan for every other detector, its ClientApp (mods included) called as a SuperNode calls
    it, with the messages the server sends in round 1: the transport is the one the real run above checks."""
    from flwr.app import ArrayRecord, Context, RecordDict

    import client_app
    from fedlog import protocol
    from fedlog.session import new_detector

    audit = _capture(tmp_path, monkeypatch)
    config = _config(detector, shared_data, tmp_path)
    initial = ArrayRecord(new_detector(RunSettings.from_flat(config), device="cpu").state())
    for node, partition in ((11, 0), (12, 1)):
        node_config = {"partition-id": partition, "num-partitions": 2}
        context = Context(run_id=1, node_id=node, node_config=node_config, state=RecordDict(), run_config=config)
        train = {protocol.SERVER_ROUND: 1, protocol.LOCAL_EPOCHS: 1}
        trained = client_app.app(instruction(initial, train, node, "train"), context)
        evaluate = {protocol.SERVER_ROUND: 1, protocol.EXPLAIN: detector in EXPLAINED}
        client_app.app(instruction(trained.content[protocol.ARRAYS], evaluate, node, "evaluate"), context)
    assert_nothing_but_ids_and_numbers_left(audit, _silos(config))


MARKER = "zq7MARKERx"  # in the silo's path and in every line of it: none of it may leave the client


@pytest.mark.slow
def test_a_failing_client_sends_a_code_not_its_paths_or_lines(tmp_path, state_dir, monkeypatch) -> None:
    from clients.errors import BAD_INPUT, ERROR_LOG, reason

    audit = tmp_path / "audit"
    monkeypatch.setenv("FEDLOG_AUDIT_DIR", str(audit))
    bad = tmp_path / f"site-{MARKER}" / f"{MARKER}.log"
    bad.parent.mkdir()
    bad.write_text("".join(f"{MARKER} {i} no bgl line here, token {MARKER}-{i}\n" for i in range(50)))
    config = (
        default_run_config()
        | TINY_DETECTORS["fastlogad"]
        | {
            "num-server-rounds": 1,
            "explain.every": -1,
            "min-nodes": 1,
            "local-epochs": 1,
            "data.silos": f"hdfs=synthetic, bgl={bad}",
            "data.synthetic-scale": 0.2,
            "output-dir": str(tmp_path / "runs"),
        }
    )
    result = run_simulation(APP_DIR, config, num_supernodes=2, stream=False, timeout=600)

    views = [json.loads(p.read_text()) for p in sorted(audit.glob("*.json"))]
    errors = [v["error"] for v in views if "error" in v]
    assert len(errors) == 2, views  # the bad silo's train and evaluate replies
    assert all(e == {"code": BAD_INPUT, "reason": reason(BAD_INPUT)} for e in errors)
    sent = [p.read_bytes() for p in audit.iterdir()]
    rounds = (result.run_dir / "rounds.jsonl").read_text()
    for text in [*sent, rounds.encode()]:
        for secret in (MARKER, str(bad.parent), "no bgl line"):
            assert secret.encode() not in text
    assert reason(BAD_INPUT) in rounds  # the server records the code
    local = (state_dir / ERROR_LOG).read_text()
    assert MARKER in local and "Traceback" in local  # the full story stays in the client's own log
