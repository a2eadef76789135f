"""Drain3 mining with keyed event ids: alignment across clients, keys, unknowns, persistence."""

from __future__ import annotations

import dataclasses
import re

from fedlog.data.loaders import load_silo
from fedlog.parse import hashing
from fedlog.parse.drain import FORMAT_SETTINGS, EventParser
from fedlog.parse.hashing import N_SPECIAL, UNK, event_id, find_collisions, token_of

KEY = b"federation-secret"


def _hdfs_contents(shared_data, start: int, count: int) -> list[str]:
    lines = (shared_data / "hdfs" / "HDFS_2pct.log").read_text().splitlines()[start : start + count]
    return [line.split(": ", 1)[1] for line in lines]


def test_same_template_gets_the_same_id_at_two_clients(shared_data) -> None:
    """Two clients mining disjoint slices agree on the ids of the templates they share."""
    a, b = EventParser(FORMAT_SETTINGS["hdfs"], KEY), EventParser(FORMAT_SETTINGS["hdfs"], KEY)
    a.mine(_hdfs_contents(shared_data, 0, 20_000))
    b.mine(_hdfs_contents(shared_data, 100_000, 20_000))
    shared = set(a.templates.values()) & set(b.templates.values())
    assert len(shared) >= 5
    inverse_a = {t: i for i, t in a.templates.items()}
    inverse_b = {t: i for i, t in b.templates.items()}
    assert all(inverse_a[t] == inverse_b[t] for t in shared)
    assert all(re.fullmatch(r"[0-9a-f]{8}", i) for i in a.templates)


def test_a_different_key_gives_different_ids(shared_data) -> None:
    contents = _hdfs_contents(shared_data, 0, 5_000)
    a, b = EventParser(FORMAT_SETTINGS["hdfs"], KEY), EventParser(FORMAT_SETTINGS["hdfs"], b"other")
    a.mine(contents)
    b.mine(contents)
    assert sorted(a.templates.values()) == sorted(b.templates.values())
    assert not set(a.templates) & set(b.templates)


def test_ids_are_keyed_hmac_not_a_plain_hash() -> None:
    import hashlib

    template = "Receiving block <BLK> src: /<IP> dest: /<IP>"
    assert event_id(KEY, template) != hashlib.sha256(template.encode()).hexdigest()[:8]
    assert event_id(KEY, template) == event_id(KEY, template)


def test_masking_collapses_variable_fields(shared_data) -> None:
    parser = EventParser(FORMAT_SETTINGS["hdfs"], KEY)
    parser.mine(_hdfs_contents(shared_data, 0, 50_000))
    assert 10 <= len(parser.templates) <= 40
    assert "Receiving block <BLK> src: /<IP> dest: /<IP>" in parser.templates.values()


def test_unseen_lines_are_unknown_and_counted(shared_data) -> None:
    parser = EventParser(FORMAT_SETTINGS["bgl"], KEY)
    silo = load_silo("bgl", shared_data / "bgl" / "BGL_first10k.log")
    parser.mine(r.content for r in silo.records)
    ids = parser.match_all([silo.records[0].content, "completely novel kernel panic text here"])
    assert ids[0] is not None and ids[1] is None
    assert parser.report.unknown == 1 and parser.report.matched == 1


def test_parser_state_persists_and_reloads(tmp_path, shared_data) -> None:
    contents = _hdfs_contents(shared_data, 0, 5_000)
    parser = EventParser(FORMAT_SETTINGS["hdfs"], KEY)
    parser.mine(contents)
    parser.save(tmp_path / "parser.pkl")
    again = EventParser.load(tmp_path / "parser.pkl", KEY)
    assert again.templates == parser.templates
    assert again.match_all(contents[:500]) == parser.match_all(contents[:500])


def test_collisions_are_detected(monkeypatch) -> None:
    monkeypatch.setattr(hashing, "ID_HEX", 1)  # 16 possible ids: collisions are certain
    templates = [f"template number {i}" for i in range(40)]
    collisions = find_collisions(KEY, templates)
    assert collisions and all(len(ts) > 1 for ts in collisions.values())
    assert sum(len(ts) for ts in collisions.values()) <= 40


def test_token_space() -> None:
    assert token_of(None, 128) == UNK
    assert token_of("000000ff", 128) == N_SPECIAL + 255 % 128


def test_parse_benchmark_reports_rates(synthetic_silos) -> None:
    from fedlog.bench import parse_throughput

    result = parse_throughput("bgl", synthetic_silos["bgl"] / "BGL.log")
    assert result["lines"] > 1000 and result["templates"] >= 5
    rates = [v for k, v in result.items() if k.endswith("_per_s")]
    assert len(rates) == 7 and all(r > 0 for r in rates)  # ours (5) and raw Drain3 add/match


def _bounded(max_clusters: int) -> EventParser:
    return EventParser(dataclasses.replace(FORMAT_SETTINGS["hdfs"], max_clusters=max_clusters), KEY)


def _event(i: int) -> str:
    """A line of its own template: Drain's tree splits on the first token (letters only, no digits)."""
    return f"{'abcdefghij'[i // 10]}{'abcdefghij'[i % 10]}worker started cleanly"


def test_a_parser_mined_past_max_clusters_stays_at_the_bound() -> None:
    parser = _bounded(5)
    parser.mine(_event(i) for i in range(40))
    assert len(parser._drain.clusters) == 5 and len(parser.templates) == 5
    assert set(parser.templates.values()) == {_event(i) for i in range(35, 40)}  # the most recent survive


def test_repeats_keep_a_frequent_template_from_eviction() -> None:
    """Repeats are fed to Drain once, yet they still count as use in its LRU order.

    Were the frequent cluster evicted, its next repeat would start it over as the literal line.
    """
    parser = _bounded(5)
    learned = ["heartbeat from nodea", "heartbeat from nodeb"]
    parser.mine(learned + [line for i in range(40) for line in (_event(i), learned[0])])
    assert "heartbeat from <*>" in parser.templates.values()


def test_an_evicted_template_is_unknown_until_mined_again_under_the_same_id() -> None:
    parser = _bounded(5)
    parser.mine([_event(0)])
    [first_id] = parser.match_all([_event(0)])
    parser.mine(_event(i) for i in range(1, 6))
    assert parser.match_all([_event(0)]) == [None] and first_id not in parser.templates
    parser.mine([_event(0)])
    assert parser.match_all([_event(0)]) == [first_id]


def test_a_bounded_parser_saves_and_loads_without_loss(tmp_path, shared_data) -> None:
    contents = _hdfs_contents(shared_data, 0, 5_000) + [_event(i) for i in range(30)]
    parser = _bounded(12)
    parser.mine(contents)
    parser.save(tmp_path / "parser.pkl")
    again = EventParser.load(tmp_path / "parser.pkl", KEY)
    assert again.settings == parser.settings and again.templates == parser.templates
    assert len(again.templates) == 12
    assert again.match_all(contents) == parser.match_all(contents)
    again.mine(_event(i) for i in range(30, 60))  # the restored LRU still bounds further mining
    assert len(again._drain.clusters) == 12
