"""The ``custom`` format on real logs no built-in loader knows (Loghub's OpenSSH, Zookeeper and BGL samples):
loading with every line accounted for, labels per line or per session, training, a federation next to a
built-in silo, and ``fedlog detect`` (batch and --follow) naming the lines behind an alert."""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path

import pytest
from conftest import TINY_FASTLOGAD

from fedlog.centralized import train_centralized
from fedlog.cli import APP_DIR, main
from fedlog.config import RunSettings, default_run_config, load_overlay
from fedlog.data.custom import CustomFormat, CustomFormatError
from fedlog.data.loaders import LineReader, SiloError, load_silo
from fedlog.data.records import ANOMALY, NORMAL, UNLABELED
from fedlog.detect import Scorer, detect_files, follow_files
from fedlog.parse.drain import FORMAT_SETTINGS
from fedlog.silo import SiloSource

REPO = Path(__file__).resolve().parent.parent
OPENSSH = load_overlay(REPO / "configs" / "custom-openssh.toml")  # the README's worked example
ZOOKEEPER = {
    "custom.layout": r"<Date> <Time> - <Level>  \[<Node>:<Component>@<Id>\] - <Content>",
    "custom.timestamp": "Date Time => %Y-%m-%d %H:%M:%S,%f",
    "custom.parser": "zookeeper",
}
BGL_LAYOUT = r"<Label> <Epoch> <Day> <Node> <Time> <NodeRepeat> <Type> <Component> <Level>( <Content>)?"  # may be empty


def custom(settings: dict[str, str]) -> CustomFormat:
    return CustomFormat.from_config(settings)


@pytest.fixture(scope="module")
def openssh_log(shared_data) -> Path:
    return shared_data / "loghub-2k" / "OpenSSH" / "OpenSSH_2k.log"


def test_openssh_loads_every_line_with_sshd_pids_as_sessions(openssh_log) -> None:
    silo = load_silo("custom", openssh_log, custom=custom(OPENSSH))
    assert silo.report.records == silo.report.lines_read == 2000 and silo.report.malformed == 0
    first = silo.records[0]
    assert first.sessions == ("24200",) and first.content.startswith("reverse mapping checking getaddrinfo")
    assert first.lineno == 1 and first.source == str(openssh_log)
    assert [r.timestamp for r in silo.records[5:7]] == [silo.records[4].timestamp + 2] * 2  # 06:55:46 -> :48
    # unlabelled, for training: every line and session is taken as normal, and the notes say so
    assert {r.label for r in silo.records} == {NORMAL} and set(silo.session_labels.values()) == {NORMAL}
    assert len(silo.session_labels) == len({r.sessions[0] for r in silo.records})
    assert "taken as normal" in custom(OPENSSH).notes()[0]
    # scoring new logs: no assumption, the lines stay unlabelled
    new = load_silo("custom", openssh_log, require_labels=False, custom=custom(OPENSSH))
    assert {r.label for r in new.records} == {UNLABELED} and not new.session_labels


def test_a_session_regex_over_the_content_keys_lines_by_remote_host(openssh_log) -> None:
    by_host = custom(OPENSSH | {"custom.session": r"(?:rhost=|from )([\w.-]+)"})
    silo = load_silo("custom", openssh_log, custom=by_host)
    keyed = [r for r in silo.records if r.sessions]
    assert keyed[0].sessions == ("173.234.31.186",)
    # lines that name no host ("pam_unix(sshd:auth): check pass; user unknown") are records with no session
    assert silo.report.no_session == 2000 - len(keyed) > 0 and silo.report.examples["no_session"]
    assert SiloSource("custom", str(openssh_log), custom=by_host).window_spec.kind == "session"
    assert SiloSource("custom", str(openssh_log), custom=custom(ZOOKEEPER)).window_spec.size == 20


def test_zookeeper_with_a_regex_layout_splits_as_loghubs_structured_csv(shared_data) -> None:
    import csv

    folder = shared_data / "loghub-2k" / "Zookeeper"
    regex = (
        r"(?P<Date>\S+) (?P<Time>\S+) - (?P<Level>\w+)\s+"
        r"\[(?P<Node>[^:]*):(?P<Component>[^@]*)@\d+\] - (?P<Content>.*)"
    )
    for settings in (ZOOKEEPER, ZOOKEEPER | {"custom.layout": regex}):
        silo = load_silo("custom", folder / "Zookeeper_2k.log", custom=custom(settings))
        with (folder / "Zookeeper_2k.log_structured.csv").open() as handle:
            truth = [row["Content"] for row in csv.DictReader(handle)]
        assert [r.content for r in silo.records] == truth
        assert silo.records[1].timestamp - silo.records[0].timestamp == pytest.approx(4947.647)  # 17:41:44,747


def test_per_line_labels_read_bgl_as_the_built_in_loader_does(shared_data) -> None:
    path = shared_data / "bgl" / "BGL_20k_resampled.log"
    bgl = {"custom.layout": BGL_LAYOUT, "custom.timestamp": "Time => %Y-%m-%d-%H.%M.%S.%f"}
    ours = load_silo("custom", path, custom=custom(bgl | {"custom.label-field": "Label:-"}))
    builtin = load_silo("bgl", path)
    assert sorted((r.lineno, r.label, r.content) for r in ours.records) == sorted(
        (r.lineno, r.label, r.content) for r in builtin.records
    )
    assert sum(r.label == ANOMALY for r in ours.records) == 10_000


def test_session_labels_from_a_csv_and_unknown_sessions_stay_unlabelled(openssh_log, tmp_path) -> None:
    labels = tmp_path / "labels.csv"
    labels.write_text("Session,Label\n24200,Anomaly\n24203,normal\n24206,0\nnot a row\n")
    silo = load_silo("custom", openssh_log, custom=custom(OPENSSH | {"custom.labels": str(labels)}))
    assert silo.session_labels == {"24200": ANOMALY, "24203": NORMAL, "24206": NORMAL}
    assert silo.report.label_skipped == 1 and str(silo.report.label_issues[0]).startswith(f"{labels}:5: expected")
    assert silo.report.unlabeled_sessions == len({r.sessions[0] for r in silo.records}) - 3
    assert {r.label for r in silo.records} == {UNLABELED}  # sessions carry the labels, not lines


def test_bad_lines_are_counted_with_file_and_line_never_raised(openssh_log, tmp_path) -> None:
    lines = openssh_log.read_text().splitlines()[:6]
    lines[1] = "garbage without a header"
    lines[2] = lines[2].replace("Dec 10", "Dec 42")  # fits the layout, not the calendar
    lines[3] = lines[3].replace("Dec", "Foo")
    lines[4] = ""
    path = tmp_path / "bad.log"
    path.write_bytes("\n".join(lines).encode() + b"\n\xff\xfe broken\n")
    silo = load_silo("custom", path, custom=custom(OPENSSH))
    report = silo.report
    assert (report.records, report.malformed, report.blank, report.undecodable) == (2, 3, 1, 1)
    assert report.accounted == report.lines_read == 7
    issues = [str(i) for i in report.issues]
    assert issues[0] == f"{path}:2: does not fit custom.layout {OPENSSH['custom.layout']!r}"
    assert issues[1].startswith(f"{path}:3: impossible field in a custom line: timestamp 'Dec 42 06:55:46'")
    assert issues[2].startswith(f"{path}:4:") and f"{path}:7: not UTF-8" in issues[3]
    # the live reader counts the same lines the same way
    reader = LineReader("custom", custom=custom(OPENSSH))
    assert reader.read_files([path]) and reader.report.to_dict() == report.to_dict()


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"custom.timestamp": "Date => %b"}, "custom.layout and custom.timestamp"),
        (OPENSSH | {"custom.layout": "<Date> <Time>"}, "no <Content> field"),
        (OPENSSH | {"custom.layout": r"(?P<Date>\S+) (?P<Rest>.*"}, "not a valid regex"),
        (OPENSSH | {"custom.timestamp": "Date Hour => %b %H"}, "field 'Hour' is not in the layout"),
        (OPENSSH | {"custom.timestamp": "%b %d %H:%M:%S"}, "expected 'FIELD [FIELD...] => STRPTIME'"),
        (OPENSSH | {"custom.masks": "port ( => PORT"}, "custom.masks regex"),
        (OPENSSH | {"custom.masks": r"port \d+"}, "expected 'REGEX => NAME'"),
        (OPENSSH | {"custom.parser": "sshd"}, "custom.parser 'sshd'"),
        (OPENSSH | {"custom.session": r"rhost=\S+"}, "needs a group"),
        (OPENSSH | {"custom.label-field": "Level:INFO"}, "field 'Level' is not in the layout"),
        (OPENSSH | {"custom.session": "", "custom.labels": "x.csv"}, "set custom.session too"),
        (OPENSSH | {"custom.sesion": "Pid"}, "unknown custom setting(s) sesion"),
    ],
)
def test_unusable_settings_fail_at_start_naming_the_key(settings: dict, message: str) -> None:
    with pytest.raises(CustomFormatError, match=re.escape(message)):
        custom(settings)


def test_masks_go_before_the_named_systems_and_a_custom_silo_needs_its_settings(openssh_log) -> None:
    masks = custom(OPENSSH | {"custom.masks": r"user \w+ => USER; a\;b => *"}).parser_settings().masking
    assert masks == ((r"user \w+", "USER"), ("a;b", "*"), *FORMAT_SETTINGS["openssh"].masking)
    with pytest.raises(SiloError, match="custom.layout"):
        load_silo("custom", openssh_log)
    settings = RunSettings.from_flat(default_run_config())
    with pytest.raises(CustomFormatError, match="custom.layout and custom.timestamp"):
        settings.silo_source(f"custom={openssh_log}")
    with pytest.raises(SiloError, match="only with, a custom silo"):
        SiloSource.parse(f"bgl={openssh_log}", custom=custom(OPENSSH))


@pytest.fixture(scope="module")
def openssh_run(openssh_log, state_dir, one_thread, tmp_path_factory) -> Path:
    """A tiny FastLogAD trained centrally on the OpenSSH sample, read as the worked example reads it."""
    config = default_run_config() | TINY_FASTLOGAD | OPENSSH
    config |= {
        "data.silos": f"custom={openssh_log}",
        "num-server-rounds": 1,
        "local-epochs": 2,
        "output-dir": str(tmp_path_factory.mktemp("runs")),
    }
    return train_centralized(config)


def test_a_custom_silo_trains_and_its_summary_says_the_prefix_was_taken_as_normal(openssh_run) -> None:
    summary = json.loads((openssh_run / "summary.json").read_text())
    described = summary["silo"]
    assert described["format"] == "custom" and described["load"]["records"] == 2000
    assert described["split"]["train"]["windows"] > 200 and described["split"]["unlabeled"] == 0
    assert "taken as normal" in described["notes"][0]
    assert summary["silos"]["custom"]["examples"] > 200
    assert "no anomalous test window" in (openssh_run / "report.md").read_text()


def _with_an_intrusion(openssh_log: Path, target: Path) -> list[int]:
    """The OpenSSH sample with one sshd session of kinds of lines it never had; returns their line numbers."""
    lines = openssh_log.read_text().splitlines()
    odd = [
        "Dec 10 11:05:01 LabSZ sshd[31337]: kernel module rootkit loaded by uid 0 on tty7",
        "Dec 10 11:05:02 LabSZ sshd[31337]: overwriting /etc/shadow from an unknown process",
        "Dec 10 11:05:03 LabSZ sshd[31337]: disabling audit daemon at runlevel 3",
    ]
    target.write_text("\n".join(lines[:1200] + odd * 3 + lines[1200:]) + "\n")
    return list(range(1201, 1210))


def test_detect_cli_scores_a_custom_log_and_names_the_lines(openssh_run, openssh_log, tmp_path) -> None:
    log = tmp_path / "openssh.log"
    odd_lines = _with_an_intrusion(openssh_log, log)
    out = tmp_path / "windows.jsonl"
    assert main(["detect", str(log), "--run", str(openssh_run), "--format", "custom", "--out", str(out)]) == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert sum(r["lines"] for r in records) == 2009  # session windows: every line in one sshd session
    intrusion = next(r for r in records if r["window"] == "31337")
    assert intrusion["anomalous"] and intrusion["first"] == {"file": str(log), "line": 1201}
    named = intrusion["top_lines"]
    assert named and all(t["file"] == str(log) and t["line"] in odd_lines for t in named)
    raw = log.read_text().splitlines()
    assert all(raw[t["line"] - 1].endswith(t["text"]) for t in named)

    scorer = Scorer.from_run(openssh_run, "custom")
    assert scorer.spec.kind == "session" and scorer.custom == custom(OPENSSH)
    stop = threading.Event()
    stop.set()  # one pass over what the file holds, then everything still open is scored
    with (tmp_path / "follow.jsonl").open("w") as handle:
        follow_summary = follow_files(scorer, [log], handle, stop)
    followed = [json.loads(line) for line in (tmp_path / "follow.jsonl").read_text().splitlines()]
    assert sorted(r["window"] for r in followed) == sorted(r["window"] for r in records)
    assert next(r for r in followed if r["window"] == "31337")["anomalous"]
    assert follow_summary["load"]["records"] == 2009


def test_detect_with_a_session_label_file_reports_metrics(openssh_run, openssh_log, tmp_path) -> None:
    log = tmp_path / "openssh.log"
    _with_an_intrusion(openssh_log, log)
    labels = tmp_path / "labels.csv"
    labels.write_text("31337,Anomaly\n24200,Normal\n24203,Normal\n")
    scorer = Scorer.from_run(openssh_run, "custom")
    with (tmp_path / "w.jsonl").open("w") as handle:
        summary = detect_files(scorer, [log], handle, labels)
    assert summary["silos"]["custom"]["examples"] == 3 and summary["silos"]["custom"]["recall"] == 1.0


@pytest.mark.slow
def test_a_custom_silo_federates_next_to_a_built_in_one(openssh_log, state_dir, tmp_path) -> None:
    from fedlog.simulation import run_simulation

    config = default_run_config() | TINY_FASTLOGAD | OPENSSH
    config |= {
        "num-server-rounds": 1,
        "local-epochs": 1,
        "explain.every": -1,
        "min-nodes": 2,
        "data.silos": f"custom={openssh_log}, bgl=synthetic",
        "data.synthetic-scale": 0.3,
        "output-dir": str(tmp_path / "runs"),
    }
    run = run_simulation(APP_DIR, config, num_supernodes=2, stream=False, timeout=600).run_dir
    rounds = [json.loads(line) for line in (run / "rounds.jsonl").read_text().splitlines()]
    assert set(rounds[0]["silos"]) == {"0:custom", "1:bgl"}
    custom_silo = rounds[0]["silos"]["0:custom"]
    assert custom_silo["train"]["examples"] > 200 and custom_silo["eval"]["examples"] > 200
    assert json.loads((run / "params.json").read_text())["custom.session"] == "Pid"


def test_a_supernode_names_a_custom_silo_in_its_node_config(openssh_log, state_dir, monkeypatch) -> None:
    """Deployment: the node config says where the logs are, the run config how they read."""
    from types import SimpleNamespace

    from client_app import _session

    monkeypatch.setenv("FEDLOG_FEDERATION_KEY", "test-key")  # a deployed client refuses to run without one
    config = default_run_config() | TINY_FASTLOGAD | OPENSSH | {"data.silos": "hdfs=synthetic"}
    context = SimpleNamespace(run_config=config, node_config={"silo": f"custom={openssh_log}", "partition-id": 3})
    session, partition = _session(context)
    assert (session.name, partition, session.source.window_spec.kind) == ("custom", 3, "session")
    assert session.source.custom == custom(OPENSSH) and len(session.silo.split.train) > 200
