"""What the server sees: a test plays an honest-but-curious server holding the event histograms that
real silos send (hashed ids and counts) and a dictionary of the very templates those silos parsed.

Without the clients' federation key it cannot map one received id back to a template; with the public
demo key (simulations only) it maps nearly all of them. What the histograms alone do tell it: ids are
the same in every silo, so it sees which silos share events, and two silos of the same system stand out
from a silo of another system."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from fedlog.config import RunSettings, default_run_config
from fedlog.parse.hashing import DEMO_KEY, event_id
from fedlog.silo import PreparedSilo, prepare_silo

SECRET = b"the-clients-own-federation-key-0123456789"
BGL = "bgl/BGL_20k_resampled.log"  # varied: hundreds of templates in 2000 lines


def _silo(entry: str, shared_data: Path, state: Path, key: bytes) -> PreparedSilo:
    settings = RunSettings.from_flat(default_run_config() | {"data.dir": str(shared_data), "data.max-lines": 2000})
    return prepare_silo(settings.silo_source(entry), settings.split, key, state)


@pytest.fixture(scope="module")
def silos(shared_data, tmp_path_factory) -> dict[str, PreparedSilo]:
    """Two BGL silos (different stretches of the log) and a Thunderbird silo, hashed with a secret key."""
    root = tmp_path_factory.mktemp("server-view")
    later = root / "bgl-later.log"
    later.write_text("".join((shared_data / BGL).read_text(errors="replace").splitlines(True)[10000:12000]))
    entries = {
        "bgl-a": f"bgl={BGL}",
        "bgl-b": f"bgl={later}",
        "thunderbird": "thunderbird=thunderbird/Thunderbird_2k.log",
    }
    return {name: _silo(entry, shared_data, root / "state", SECRET) for name, entry in entries.items()}


def test_without_the_key_no_received_id_maps_to_a_template(silos) -> None:
    received = {eid for silo in silos.values() for eid in silo.train_histogram}
    dictionary = {t for silo in silos.values() for t in silo.templates.values()}  # the best dictionary there is
    assert len(received) > 50 and len(dictionary) >= len(received)

    def matched(hash_of) -> int:
        return len(received & {hash_of(t) for t in dictionary})

    assert matched(lambda t: event_id(SECRET, t)) == len(received)  # the clients' own mapping (sanity)
    assert matched(lambda t: event_id(DEMO_KEY, t)) == 0  # guessing the public demo key
    assert matched(lambda t: hashlib.sha256(t.encode()).hexdigest()[:8]) == 0  # an unkeyed hash
    assert matched(lambda t: event_id(b"", t)) == 0


def test_with_the_demo_key_the_server_reads_the_ids(silos, shared_data, tmp_path) -> None:
    """Why a deployment refuses the demo key: a silo hashed with it is an open book."""
    silo = _silo(f"bgl={BGL}", shared_data, tmp_path, DEMO_KEY)
    guessed = {event_id(DEMO_KEY, t): t for t in silos["bgl-a"].templates.values()}
    known = [eid for eid in silo.train_histogram if eid in guessed]
    assert len(known) == len(silo.train_histogram)


def test_histograms_alone_show_which_silos_run_the_same_system(silos) -> None:
    def shared(a: str, b: str) -> float:  # Jaccard overlap of the ids two silos sent
        x, y = set(silos[a].train_histogram), set(silos[b].train_histogram)
        return len(x & y) / len(x | y)

    same, other = shared("bgl-a", "bgl-b"), max(shared("bgl-a", "thunderbird"), shared("bgl-b", "thunderbird"))
    assert same > 0.1 and other < same / 3, (same, other)
