"""The embedded default data set: deterministic, heterogeneous, with several anomaly kinds."""

from __future__ import annotations

import hashlib

from fedlog.data.loaders import load_silo
from fedlog.data.synthetic import SYNTHETIC_SILOS, SyntheticSpec, generate_silos


def _digest(paths) -> str:
    h = hashlib.sha256()
    for name in SYNTHETIC_SILOS:
        for f in sorted(paths[name].iterdir()):
            h.update(f.read_bytes())
    return h.hexdigest()


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path) -> None:
    spec = SyntheticSpec(seed=11, scale=0.1)
    a = generate_silos(tmp_path / "a", spec)
    b = generate_silos(tmp_path / "b", spec)
    c = generate_silos(tmp_path / "c", SyntheticSpec(seed=12, scale=0.1))
    assert _digest(a) == _digest(b) != _digest(c)


def test_silos_load_in_their_real_formats_with_anomalies(synthetic_silos) -> None:
    for fmt in SYNTHETIC_SILOS:
        silo = load_silo(fmt, synthetic_silos[fmt])
        assert silo.report.malformed == 0 and silo.report.undecodable == 0
        if silo.session_labels:
            assert 0 < sum(silo.session_labels.values()) < len(silo.session_labels)
        else:
            labels = {r.label for r in silo.records}
            assert labels == {0, 1}


def test_hdfs_like_silo_has_each_anomaly_kind(synthetic_silos) -> None:
    silo = load_silo("hdfs", synthetic_silos["hdfs"])
    by_block: dict[str, list[str]] = {}
    for r in silo.records:
        by_block.setdefault(r.sessions[0], []).append(r.content)
    anomalous = [m for b, m in by_block.items() if silo.session_labels[b]]
    normal = [m for b, m in by_block.items() if not silo.session_labels[b]]
    assert any(any("exception" in line for line in msgs) for msgs in anomalous)  # error events
    assert any(any("invalidSet" in line for line in msgs) for msgs in anomalous)  # rare events
    assert any(sum("Receiving block" in line for line in msgs) > 3 for msgs in anomalous)  # extra steps
    assert any(sum("addStoredBlock" in line for line in msgs) < 3 for msgs in anomalous)  # missing steps
    assert all(sum("Receiving block" in line for line in msgs) == 3 for msgs in normal)
    ordered = [m for m in anomalous if m and "allocateBlock" in m[0]]
    assert any("addStoredBlock" in m[1] for m in ordered)  # out-of-order steps
