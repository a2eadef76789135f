"""The wire format: the model travels packed, one flat array per dtype, and comes back exactly."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import TINY_FASTLOGAD, instruction
from flwr.app import Array, ArrayRecord

from fedlog import protocol

STATE = {
    "embed.weight": np.arange(12, dtype=np.float32).reshape(3, 4) / 7,
    "steps": np.array(2**40 + 3, dtype=np.int64),  # an int buffer: exact, not cast to float
    "norm.bias": np.array([-0.0, np.inf, 1e-30], dtype=np.float32),
    "table": np.arange(6, dtype=np.float64).reshape(2, 3, 1) / 3,
    "mask": np.array([[1, 0], [0, 1]], dtype=np.int32),
    "empty": np.zeros((0, 5), dtype=np.float32),
}


def _named(record: ArrayRecord) -> dict[str, np.ndarray]:
    return {k: v.numpy() for k, v in record.items()}


def test_pack_round_trips_names_order_shapes_dtypes_and_values_exactly() -> None:
    packed = protocol.pack(STATE)
    assert protocol.is_packed(packed) and len(packed) == 4  # float32, int64, float64, int32
    back = _named(protocol.unpack(packed))
    assert list(back) == list(STATE)
    for name, value in STATE.items():
        assert back[name].dtype == value.dtype and back[name].shape == value.shape, name
        assert back[name].tobytes() == value.tobytes(), name
    assert int(back["steps"]) == 2**40 + 3


def test_torch_state_dicts_pack_like_numpy_and_come_back_as_tensors() -> None:
    state = {k: torch.from_numpy(v.copy()) for k, v in STATE.items()}
    restored = protocol.unpack(protocol.pack(state)).to_torch_state_dict()
    assert list(restored) == list(state)
    for name, tensor in state.items():
        assert restored[name].dtype == tensor.dtype and torch.equal(restored[name], tensor), name


def test_a_named_record_passes_unchanged_and_a_broken_layout_is_refused() -> None:
    named = ArrayRecord({k: Array(v) for k, v in STATE.items()})
    assert protocol.unpack(named) is named
    packed = protocol.pack(STATE)
    key = next(k for k in packed if '"float32"' in k or "<f4" in k)
    short = ArrayRecord({key: Array(packed[key].numpy()[:-1])})
    with pytest.raises(ValueError):
        protocol.unpack(short)
    with pytest.raises(ValueError):
        protocol.unpack(ArrayRecord({key: packed[key], "w": Array(np.ones(2))}))


def test_replies_are_unpacked_in_place_and_a_bad_one_is_left_for_screening(task_identity) -> None:
    from strategies.common import decode, screen

    finite = STATE | {"norm.bias": np.array([-0.0, 3.0, 1e-30], dtype=np.float32)}
    good = instruction(protocol.pack(finite))
    packed = protocol.pack(finite)
    key = next(iter(packed))
    bad = instruction(ArrayRecord({key: Array(packed[key].numpy()[:-1])}))
    garbled = instruction(ArrayRecord({protocol.PACKED + '{"arrays": 3': Array(np.ones(2, dtype=np.float32))}))
    protocol.unpack_replies([good, bad, garbled])
    assert list(good.content[protocol.ARRAYS]) == list(finite)
    reference = dict(finite)
    assert screen(decode(good), reference) is None
    assert screen(decode(bad), reference) == "array names differ from the global model"
    assert screen(decode(garbled), reference) == "array names differ from the global model"


def test_instructions_share_one_packed_record(task_identity) -> None:
    named = ArrayRecord({k: Array(v) for k, v in STATE.items()})
    sent = protocol.pack_instructions([instruction(named, node=n) for n in (1, 2)])
    first, second = (m.content[protocol.ARRAYS] for m in sent)
    assert first is second and protocol.is_packed(first)


def test_a_train_reply_carries_a_few_arrays_not_one_per_tensor(tmp_path, state_dir, task_identity, one_thread) -> None:
    """Each array is its own object (and HTTP request, signed under node auth) per hop when deployed."""
    from flwr.app import Context, RecordDict

    import client_app
    from fedlog.config import RunSettings, default_run_config
    from fedlog.session import new_detector

    config = (
        default_run_config()
        | TINY_FASTLOGAD
        | {
            "data.silos": "hdfs=synthetic, bgl=synthetic",
            "data.synthetic-scale": 0.2,
            "output-dir": str(tmp_path),
        }
    )
    state = new_detector(RunSettings.from_flat(config), device="cpu").state()
    assert len(state) > 20
    node_config = {"partition-id": 0, "num-partitions": 2}
    context = Context(run_id=1, node_id=11, node_config=node_config, state=RecordDict(), run_config=config)
    train = {protocol.SERVER_ROUND: 1, protocol.LOCAL_EPOCHS: 1}
    reply = client_app.app(instruction(protocol.pack(state), train, 11, "train"), context)
    arrays = reply.content[protocol.ARRAYS]
    assert protocol.is_packed(arrays) and len(arrays) <= 3
    trained = protocol.unpack(arrays).to_torch_state_dict()
    assert list(trained) == list(state)
    assert all(trained[k].shape == v.shape and trained[k].dtype == v.dtype for k, v in state.items())
