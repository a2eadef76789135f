"""TEST HOOK: a SuperNode started with node config ``fault="nan"`` or ``fault="shape"`` corrupts its train
replies, so a real run can show the server rejecting and recording them. Never set it in production."""

from __future__ import annotations

from collections.abc import Mapping

import torch

FAULTS = ("nan", "shape")


def inject_fault(state: Mapping[str, torch.Tensor], fault: str) -> dict[str, torch.Tensor]:
    """The trained state with its first float tensor made NaN (``nan``) or one row short (``shape``)."""
    if fault not in FAULTS:
        raise ValueError(f"node config fault={fault!r}: expected one of {', '.join(FAULTS)}")
    out = dict(state)
    name = next(k for k, v in out.items() if v.is_floating_point() and v.numel() > 1)
    tensor = out[name]
    out[name] = torch.full_like(tensor, float("nan")) if fault == "nan" else tensor.reshape(-1)[:-1].clone()
    return out
