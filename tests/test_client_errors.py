"""The ClientApp as a SuperNode runs it, without a federation: failures leave as fixed codes, and a
deployed client (``silo`` in its node config) refuses to start without a federation key."""

from __future__ import annotations

import pytest
from conftest import instruction

from fedlog.config import default_run_config
from fedlog.parse.hashing import DEMO_KEY, KEY_ENV, KEY_FILE_ENV, FederationKeyMissing, federation_key


def _call(node_config: dict, run_config: dict):
    """One train message through client_app.app (its mods included); returns the reply."""
    from flwr.app import ArrayRecord, Context, RecordDict

    import client_app

    msg = instruction(ArrayRecord(), {"server-round": 1, "local-epochs": 1}, node=7, kind="train")
    context = Context(run_id=1, node_id=7, node_config=node_config, state=RecordDict(), run_config=run_config)
    return client_app.app(msg, context)


@pytest.fixture()
def no_key(monkeypatch, tmp_path):
    monkeypatch.delenv(KEY_ENV, raising=False)
    monkeypatch.delenv(KEY_FILE_ENV, raising=False)
    monkeypatch.setenv("FEDLOG_STATE_DIR", str(tmp_path / "state"))
    return tmp_path / "state"


def test_a_deployed_client_without_a_federation_key_replies_with_the_key_code(no_key, task_identity) -> None:
    from clients.errors import ERROR_LOG, MISSING_KEY, reason

    reply = _call({"silo": "hdfs=/srv/logs/secret-site/HDFS.log"}, default_run_config())
    assert reply.has_error()
    assert (reply.error.code, reply.error.reason) == (MISSING_KEY, reason(MISSING_KEY))
    local = (no_key / ERROR_LOG).read_text()  # the operator reads what to do in the client's own log
    assert KEY_FILE_ENV in local and KEY_ENV in local and "fedlog certs" in local


def test_a_bad_silo_replies_with_the_input_code_and_no_text(no_key, monkeypatch, task_identity) -> None:
    from clients.errors import BAD_INPUT, ERROR_LOG, reason

    monkeypatch.setenv(KEY_ENV, "k" * 32)
    path = "/srv/logs/secret-site/HDFS.log"
    reply = _call({"silo": f"hdfs={path}"}, default_run_config())
    assert (reply.error.code, reply.error.reason) == (BAD_INPUT, reason(BAD_INPUT))
    assert path in (no_key / ERROR_LOG).read_text()


def test_error_codes_follow_the_kind_of_failure() -> None:
    from clients.errors import BAD_INPUT, CODES, INTERNAL, MISSING_KEY, SECAGG_RANGE, error_code, reason
    from fedlog.secagg import SecAggRangeError

    assert error_code(FederationKeyMissing("x")) == MISSING_KEY
    assert error_code(SecAggRangeError("x")) == SECAGG_RANGE
    assert error_code(FileNotFoundError("/a/b")) == error_code(KeyError("k")) == BAD_INPUT
    assert error_code(RuntimeError("boom")) == error_code(ZeroDivisionError()) == INTERNAL
    assert len({reason(c) for c in CODES}) == len(CODES)


def test_the_demo_key_is_for_simulations_only(no_key) -> None:
    assert federation_key() == DEMO_KEY
    with pytest.raises(FederationKeyMissing, match="fedlog certs"):
        federation_key(required=True)


def test_fedlog_supernode_refuses_to_start_without_a_key(no_key, tmp_path, capsys, monkeypatch) -> None:
    from fedlog.cli import main

    args = ["supernode", "--superlink", "127.0.0.1:9", "--silo", "hdfs=x.log", "--certs", str(tmp_path), "--insecure"]
    with pytest.raises(SystemExit):
        main([*args, "--print-only"])  # --partition is required: two nodes must not both be 0:hdfs
    args += ["--partition", "1", "--print-only"]
    assert main(args) == 2
    assert KEY_FILE_ENV in capsys.readouterr().err
    monkeypatch.setenv(KEY_ENV, "k" * 32)
    assert main(args) == 0
    assert "partition-id=1" in capsys.readouterr().out
