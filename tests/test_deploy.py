"""A real deployment on loopback: SuperLink + SuperNodes as separate processes with TLS and SuperNode
authentication; a SuperNode that dies mid-run and one that sends NaN; SuperNodes without valid credentials."""

from __future__ import annotations

import json
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import TINY_FASTLOGAD
from cryptography import x509

from fedlog import deploy
from fedlog.config import default_run_config
from fedlog.loopback import LoopbackFederation


def _rounds(runs: Path) -> list[dict]:
    files = list(runs.glob("*/rounds.jsonl"))
    return [json.loads(line) for line in files[0].read_text().splitlines()] if files else []


def test_certs_cover_the_hosts_and_node_keys_are_openssh_p384(tmp_path) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import load_ssh_private_key, load_ssh_public_key

    paths = deploy.make_certs(tmp_path, ["link.example.org", "10.0.0.5"], ["hdfs-site"])
    cert = x509.load_pem_x509_certificate(paths.server_cert.read_bytes())
    ca = x509.load_pem_x509_certificate(paths.ca_cert.read_bytes())
    cert.verify_directly_issued_by(ca)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {"link.example.org", "localhost"} <= set(san.get_values_for_type(x509.DNSName))
    assert {"10.0.0.5", "127.0.0.1"} <= {str(ip) for ip in san.get_values_for_type(x509.IPAddress)}
    private = load_ssh_private_key(paths.node_private("hdfs-site").read_bytes(), None)
    public = load_ssh_public_key(paths.node_public("hdfs-site").read_bytes())
    assert isinstance(private, ec.EllipticCurvePrivateKey) and private.curve.name == "secp384r1"
    assert public == private.public_key()
    assert paths.node_private("hdfs-site").stat().st_mode & 0o077 == 0  # private keys not world-readable
    with pytest.raises(FileExistsError):
        deploy.make_certs(tmp_path, ["x"], [])  # an existing CA is never silently replaced
    assert "--insecure" not in deploy.superlink_command(paths)
    assert "--enable-supernode-auth" in deploy.superlink_command(paths)


class _OneReplyPerPull:
    """A grid whose replies come in one per pull, in order (with the one field PromptGrid reads)."""

    def __init__(self, answers: bool = True) -> None:
        self.answers, self.pulls = answers, 0

    def push_messages(self, messages: list[str]) -> list[str]:
        return [f"m{i}" for i, _ in enumerate(messages)]

    def pull_messages(self, ids: set[str]) -> list[SimpleNamespace]:
        self.pulls += 1
        first = sorted(ids)[:1] if self.answers else []
        return [SimpleNamespace(metadata=SimpleNamespace(reply_to_message_id=i)) for i in first]


def test_a_deployed_grid_collects_every_reply_and_stops_at_the_timeout() -> None:
    grid = _OneReplyPerPull()
    replies = deploy.PromptGrid(grid, poll_s=0.01).send_and_receive(["a", "b", "c"])
    assert [r.metadata.reply_to_message_id for r in replies] == ["m0", "m1", "m2"] and grid.pulls == 3
    started = time.time()
    assert list(deploy.PromptGrid(_OneReplyPerPull(answers=False), 0.01).send_and_receive(["a"], timeout=0.1)) == []
    assert time.time() - started < 1
    assert deploy.prompt_grid(grid) is grid  # only Flower's HttpGrid (a deployed run) is wrapped


def test_loopback_uses_the_callers_federation_key_or_makes_one(tmp_path, monkeypatch) -> None:
    from fedlog.parse.hashing import KEY_ENV, KEY_FILE_ENV

    monkeypatch.delenv(KEY_ENV, raising=False)
    monkeypatch.delenv(KEY_FILE_ENV, raising=False)
    made = LoopbackFederation(root=tmp_path / "made")
    assert made.made_key is not None and len(made.made_key.read_text().strip()) == 64
    assert made.env(tmp_path)[KEY_FILE_ENV] == str(made.made_key)
    monkeypatch.setenv(KEY_ENV, "the-operators-key")
    given = LoopbackFederation(root=tmp_path / "given")
    assert given.made_key is None
    env = given.env(tmp_path)
    assert env[KEY_ENV] == "the-operators-key" and KEY_FILE_ENV not in env


@pytest.mark.slow
def test_supernodes_without_valid_credentials_are_refused(tmp_path) -> None:
    with LoopbackFederation(root=tmp_path / "fed") as fed:
        fed.start_superlink()
        admitted = fed.register("admitted")
        fed.add_supernode("admitted", "hdfs=synthetic")
        assert fed.certs is not None
        deploy.make_node_keys(fed.certs, "intruder")  # a valid key pair the operator never registered
        intruder = fed.add_supernode("intruder", "hdfs=synthetic", max_wait_time=20)
        insecure = fed.add_supernode("insecure", "hdfs=synthetic", insecure=True, max_wait_time=10)  # no TLS
        assert fed.wait_for_nodes(1, timeout=60) == [admitted]
        for process in (intruder, insecure):
            process.proc.wait(timeout=90)
            assert process.proc.returncode != 0, process.output()
        assert "Failed to activate SuperNode" in intruder.output()
        time.sleep(2)
        assert fed.node_ids() == [admitted]


@pytest.mark.slow
def test_deployed_run_with_tls_and_auth_survives_a_dead_node_and_rejects_nan(
    tmp_path, state_dir, app_with_faults
) -> None:
    runs = tmp_path / "runs"
    config = (
        default_run_config()
        | TINY_FASTLOGAD
        | {
            "num-server-rounds": 2,
            "explain.every": -1,
            "min-nodes": 2,
            "local-epochs": 1,
            "data.synthetic-scale": 0.2,
            "round-timeout": 60.0,  # how long round 2 waits for the killed node
            "output-dir": str(runs),
        }
    )
    silos = {"a": "hdfs=synthetic", "b": "bgl=synthetic", "c": "thunderbird=synthetic", "d": "spirit=synthetic"}
    with LoopbackFederation(root=tmp_path / "fed") as fed:
        fed.start_superlink()
        nodes = {name: fed.register(name) for name in silos}
        procs = {
            name: fed.add_supernode(name, silo, extra_config={"fault": "nan"} if name == "d" else None)
            for name, silo in silos.items()
        }
        assert fed.wait_for_nodes(4) == sorted(nodes.values())
        run = fed.submit(app_with_faults, config)  # node d's ClientApp sends NaN (tests/fault_client_app.py)
        deadline = time.time() + 400
        while not _rounds(runs) and time.time() < deadline and run.poll() is None:
            time.sleep(1)
        assert _rounds(runs), "round 1 never finished:\n" + fed.tail()
        procs["c"].kill()  # SIGKILL: the SuperNode of silo 2:thunderbird crashes after round 1
        log = fed.communicate(run, timeout=400)
        assert list(runs.glob("*/summary.json")), log[-3000:] + fed.tail()

    (run_dir,) = runs.iterdir()
    rounds = _rounds(runs)
    assert [r["round"] for r in rounds] == [1, 2]
    first, second = (r["silos"] for r in rounds)
    assert set(first) == {"0:hdfs", "1:bgl", "2:thunderbird", "3:spirit"}
    assert all("eval" in first[s] for s in first)
    for record in (first, second):  # the NaN client is rejected in every round, the others aggregated
        assert "NaN" in record["3:spirit"]["rejected"]
        assert "train" in record["0:hdfs"] and "train" in record["1:bgl"]
    dead = second["2:thunderbird"]  # who dropped and when: no reply, or the SuperLink's node-unavailable error
    assert dead.get("dropped") == "no reply within round-timeout" or "Unavailable" in dead.get("rejected", ""), dead
    assert "train" not in dead and "eval" not in dead
    assert all(r["aggregated"] for r in rounds)
    assert (run_dir / "params" / "round-002.pt").exists()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert {"0:hdfs", "1:bgl"} <= set(summary["silos"]) and summary["rounds"] == 2
