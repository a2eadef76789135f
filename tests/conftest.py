"""Shared fixtures: the real Loghub slices in ../shared/data and small generated silos."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("FEDLOG_SHARED_DATA", REPO.parent / "shared" / "data"))

# A FastLogAD small enough for CPU tests (run-config keys).
TINY_FASTLOGAD = {
    "fastlogad.hidden": 32,
    "fastlogad.layers": 1,
    "fastlogad.heads": 2,
    "fastlogad.ffn": 64,
    "fastlogad.buckets": 512,
    "fastlogad.batch-size": 32,
}

# A distilled BERT small enough for CPU tests: teacher 2 layers of hidden 32, student 1 layer.
TINY_DISTILBERT = {
    "distilbert.hidden": 32,
    "distilbert.layers": 2,
    "distilbert.heads": 2,
    "distilbert.ffn": 64,
    "distilbert.buckets": 512,
    "distilbert.max-len": 32,
    "distilbert.teacher-lr": 0.003,
    "distilbert.lr": 0.003,
    "distilbert.batch-size": 16,
}

# LogGAN and GANFL small enough for CPU tests. GANFL's BERT is a tiny random one built from a
# BertConfig (never downloaded): the session fixture ``tiny_bert`` fills in its directory.
TINY_LOGGAN = {
    "loggan.embed": 16,
    "loggan.hidden": 16,
    "loggan.noise": 8,
    "loggan.buckets": 512,
    "loggan.passes": 10,
}
TINY_GANFL = {
    "ganfl.bert": "",  # set by the tiny_bert fixture
    "ganfl.seq-len": 16,
    "ganfl.hidden": 32,
    "ganfl.gan-hidden": 64,
    "ganfl.gan-steps": 20,
}
# The baselines (unseen-event / count-range rules, PCA, DeepLog) small enough for CPU tests.
TINY_UNSEEN = {"unseen.buckets": 512, "unseen.max-count": 16}
TINY_PCA = {"pca.buckets": 128}
TINY_DEEPLOG = {
    "deeplog.embed": 16,
    "deeplog.hidden": 32,
    "deeplog.layers": 1,
    "deeplog.buckets": 512,
    "deeplog.batch-size": 128,
}
# Every detector in a form small enough for CPU tests (run-config keys); tests that must cover all
# detectors (the privacy capture, detect and explain) parametrize over this dict.
TINY_DETECTORS = {
    "fastlogad": TINY_FASTLOGAD,
    "loggan": TINY_LOGGAN,
    "ganfl": TINY_GANFL,
    "distilbert": TINY_DISTILBERT,
    "unseen": TINY_UNSEEN,
    "pca": TINY_PCA,
    "deeplog": TINY_DEEPLOG,
}


@pytest.fixture(scope="session", autouse=True)
def tiny_bert(tmp_path_factory) -> Path:
    """A 2-layer, hidden-32 BERT with a character-level WordPiece vocabulary, saved like a
    pretrained checkpoint, so GANFL loads it through the same local-directory path as real weights."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizer

    path = tmp_path_factory.mktemp("tiny-bert")
    chars = list("abcdefghijklmnopqrstuvwxyz0123456789")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + chars + [f"##{c}" for c in chars] + list("<>*/:.,-_=[]()#")
    (path / "vocab.txt").write_text("\n".join(vocab) + "\n")
    BertTokenizer(str(path / "vocab.txt")).save_pretrained(path)
    torch.manual_seed(0)  # the same tiny weights every session
    config = BertConfig(
        vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64
    )
    BertModel(config).save_pretrained(path)
    TINY_GANFL["ganfl.bert"] = str(path)
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real log data not found at {SHARED_DATA} (set FEDLOG_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def state_dir(tmp_path_factory) -> Path:
    """A client-local state directory shared by the session (parse caches, generated silos)."""
    path = tmp_path_factory.mktemp("fedlog-state")
    os.environ["FEDLOG_STATE_DIR"] = str(path)
    return path


@pytest.fixture(scope="session")
def synthetic_silos(state_dir) -> dict[str, Path]:
    from fedlog.data.synthetic import SyntheticSpec, generate_silos

    return generate_silos(state_dir / "synthetic-test", SyntheticSpec(seed=3, scale=0.5))


def app_copy(app: Path, module: str) -> Path:
    """A copy of the Flower app in ``app`` whose ClientApp is ``tests/<module>.py``: test hooks stay out
    of the project."""
    import shutil

    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for package in ("fedlog", "strategies", "clients"):
        shutil.copytree(REPO / package, app / package, ignore=ignore)
    for path in ("client_app.py", "server_app.py", f"tests/{module}.py"):
        shutil.copy(REPO / path, app)
    pyproject = (REPO / "pyproject.toml").read_text()
    assert 'clientapp = "client_app:app"' in pyproject
    (app / "pyproject.toml").write_text(pyproject.replace('"client_app:app"', f'"{module}:app"'))
    return app


def _app_with_client(tmp_path_factory, module: str) -> Path:
    return app_copy(tmp_path_factory.mktemp(module.replace("_", "-")), module)


@pytest.fixture(scope="session")
def app_with_faults(tmp_path_factory) -> Path:
    """A copy of the Flower app whose ClientApp is tests/fault_client_app.py (node config ``fault``)."""
    return _app_with_client(tmp_path_factory, "fault_client_app")


@pytest.fixture(scope="session")
def app_with_drills(tmp_path_factory) -> Path:
    """A copy of the Flower app whose ClientApp is tests/drill_client_app.py (``FEDLOG_DRILL``)."""
    return _app_with_client(tmp_path_factory, "drill_client_app")


def instruction(arrays=None, config: dict | None = None, node: int = 7, kind: str = "train"):
    """A message as the server's grid pushes it to ``node`` (its id set), for calling a ClientApp or
    answering in a strategy test without a federation."""
    from flwr.app import ArrayRecord, ConfigRecord, Message, RecordDict

    records = {} if arrays is None else {"arrays": arrays if isinstance(arrays, ArrayRecord) else ArrayRecord(arrays)}
    if config is not None:
        records["config"] = ConfigRecord(config)
    msg = Message(RecordDict(records), dst_node_id=node, message_type=kind)
    msg.metadata.__dict__["_message_id"] = f"{kind}-{node}"  # what the grid sets when it pushes
    return msg


TWIN_SILOS = ["hdfs=synthetic", "bgl=synthetic"]


@pytest.fixture(scope="session")
def twin_runs(tmp_path_factory, state_dir) -> tuple[Path, Path]:
    """One 2-round config (tiny FastLogAD, FedMedian, two synthetic silos) run twice with one federation key and
    one torch thread: as a simulation and as a loopback deployment (TLS + node auth, one ClientApp
    process per call). Returns both run directories; test_parity compares them and test_flower_run
    reads the simulated one. Shared, because each run starts a federation."""
    import time

    from fedlog.cli import APP_DIR
    from fedlog.config import default_run_config
    from fedlog.loopback import LoopbackFederation
    from fedlog.simulation import run_simulation

    root = tmp_path_factory.mktemp("twin-runs")
    config = (
        default_run_config()
        | TINY_FASTLOGAD
        | {
            "strategy": "fedmedian",  # a robust aggregator end to end; FedAvg runs in the other simulations
            "num-server-rounds": 2,
            "explain.every": -1,  # SHAP has its own simulation test (test_distilbert_flower)
            "min-nodes": 2,
            "local-epochs": 1,
            "data.silos": ", ".join(TWIN_SILOS),
            "data.synthetic-scale": 0.2,
        }
    )
    with pytest.MonkeyPatch.context() as env:
        env.setenv("FEDLOG_FEDERATION_KEY", "parity-" + "ab" * 16)
        env.setenv("OMP_NUM_THREADS", "1")
        started = time.time()
        sim = run_simulation(APP_DIR, config | {"output-dir": str(root / "sim")}, 2, stream=False, timeout=600)
        simulated_s, started = time.time() - started, time.time()
        with LoopbackFederation(root=root / "fed") as fed:
            assert fed.made_key is None  # the caller's key, not one of its own
            fed.start_superlink()
            for i, silo in enumerate(TWIN_SILOS):
                fed.register(f"node{i}")
                fed.add_supernode(f"node{i}", silo)
            fed.wait_for_nodes(len(TWIN_SILOS))
            deployed, _ = fed.run(APP_DIR, config | {"output-dir": str(root / "deployed")}, timeout=600)
    print(f"\nwall time: simulated {simulated_s:.1f} s, deployed {time.time() - started:.1f} s")
    return sim.run_dir, deployed


@pytest.fixture()
def task_identity():
    """Flower's Message needs a run/node/task identity, which only a running app sets."""
    from flwr.supercore.task_identity import TaskIdentity

    saved = (TaskIdentity._run_id, TaskIdentity._node_id, TaskIdentity._task_id)
    TaskIdentity.run_id, TaskIdentity.node_id, TaskIdentity.task_id = 1, 1, 1
    yield
    TaskIdentity._run_id, TaskIdentity._node_id, TaskIdentity._task_id = saved


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models gain nothing from intra-op threads, and on a shared 2-core machine their
    spin-waits made training steps 10x slower; restored after the module."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
