"""The run configuration: Flower's flat, namespaced run config turned into typed settings.

Keys follow Flower's baselines (``num-server-rounds``, ``local-epochs``) with
namespaces for the parts (``data.*``, ``window.*``, ``custom.*``, ``split.*``,
``detector``, ``<detector>.*``). The same settings drive ``flwr run`` and the
centralized ``fedlog train``.
"""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from fedlog.data.custom import CUSTOM, CustomFormat
from fedlog.data.synthetic import SYNTHETIC_SILOS, SyntheticSpec, generate_silos
from fedlog.privacy import PrivacyParams
from fedlog.secagg import SecAggParams
from fedlog.silo import SiloSource, default_state_dir
from fedlog.windows import SplitSpec

SYNTHETIC = "synthetic"
T = TypeVar("T")


def flatten(table: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested TOML tables -> Flower's dotted keys."""
    flat: dict[str, Any] = {}
    for key, value in table.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def params_from_config(prefix: str, params_cls: type[T], config: Mapping[str, Any]) -> T:
    """A documented parameter dataclass from run-config keys ``<prefix>.<field-with-dashes>``
    (a field named ``lambda_`` takes the key ``lambda``); unknown keys are errors."""
    fields = {f.name: f for f in dataclasses.fields(params_cls)}  # type: ignore[arg-type]
    values = {}
    for key, value in config.items():
        if not key.startswith(f"{prefix}."):
            continue
        name = key[len(prefix) + 1 :].replace("-", "_")
        name = name if name in fields or f"{name}_" not in fields else f"{name}_"
        if name not in fields:
            raise KeyError(f"unknown {prefix} parameter {key!r}; known: {', '.join(fields)}")
        values[name] = type(getattr(params_cls(), name))(value)
    return params_cls(**values)


def load_overlay(path: str | Path) -> dict[str, Any]:
    """A ``configs/*.toml`` overlay as flat run-config keys."""
    with open(path, "rb") as handle:
        return flatten(tomllib.load(handle))


def default_run_config() -> dict[str, Any]:
    """``[tool.flwr.app.config]`` of the project's pyproject.toml (flat)."""
    pyproject = Path(__file__).resolve().parent.parent / "pyproject.toml"
    with pyproject.open("rb") as handle:
        return flatten(tomllib.load(handle)["tool"]["flwr"]["app"]["config"])


def absolutize(config: dict[str, Any]) -> dict[str, Any]:
    """Paths relative to where the user stands: the Flower apps run from a copy elsewhere."""
    for key in ("output-dir", "data.dir"):
        if config.get(key):
            config[key] = str(Path(config[key]).expanduser().resolve())
    return config


@dataclass
class RunSettings:
    """Typed view of the run config; ``raw`` keeps every key for params.json."""

    raw: dict[str, Any]
    num_rounds: int = 3
    local_epochs: int = 1
    seed: int = 42
    detector: str = "fastlogad"
    strategy: str = "fedavg"
    output_dir: str = "runs"
    silos: str = SYNTHETIC
    data_dir: str = ""
    synthetic_scale: float = 1.0
    max_lines: int = 0
    fraction_train: float = 1.0
    min_nodes: int = 2
    round_timeout: float = 3600.0
    resume_from: str = ""
    node_timeout: float = 600.0
    explain_every: int = 0  # SHAP every N rounds and the last; 0: the last only; -1: never
    explain_samples: int = 60
    explain_top_n: int = 10
    split: SplitSpec = field(default_factory=SplitSpec)
    privacy: PrivacyParams = field(default_factory=PrivacyParams)  # dp.*: differential privacy
    secagg: SecAggParams = field(default_factory=SecAggParams)  # secagg.*: Flower's SecAgg+

    @classmethod
    def from_flat(cls, config: Mapping[str, Any]) -> RunSettings:
        c = dict(config)
        if "secagg" in c:  # the key of earlier fedlog versions: ignoring it would run without the protection asked for
            raise KeyError("run-config key 'secagg' is now 'secagg.enabled'")
        return cls(
            raw=c,
            num_rounds=int(c.get("num-server-rounds", 3)),
            local_epochs=int(c.get("local-epochs", 1)),
            seed=int(c.get("seed", 42)),
            detector=str(c.get("detector", "fastlogad")),
            strategy=str(c.get("strategy", "fedavg")),
            output_dir=str(c.get("output-dir", "runs")),
            silos=str(c.get("data.silos", SYNTHETIC)),
            data_dir=str(c.get("data.dir", "")),
            synthetic_scale=float(c.get("data.synthetic-scale", 1.0)),
            max_lines=int(c.get("data.max-lines", 0)),
            fraction_train=float(c.get("fraction-train", 1.0)),
            min_nodes=int(c.get("min-nodes", 2)),
            round_timeout=float(c.get("round-timeout", 3600.0)),
            resume_from=str(c.get("resume-from", "")),
            node_timeout=float(c.get("node-timeout", 600.0)),
            explain_every=int(c.get("explain.every", 0)),
            explain_samples=int(c.get("explain.samples", 60)),
            explain_top_n=int(c.get("explain.top-n", 10)),
            split=SplitSpec(
                train_fraction=float(c.get("split.train-fraction", 0.5)),
                val_fraction=float(c.get("split.val-fraction", 0.1)),
                train_normal=int(c.get("split.train-normal", 0)),
                anomalies_to_test=bool(c.get("split.anomalies-to-test", False)),
            ),
            privacy=params_from_config("dp", PrivacyParams, c),
            secagg=params_from_config("secagg", SecAggParams, c),
        )

    @property
    def silo_entries(self) -> list[str]:
        """Silo i of the federation; ``synthetic`` expands to the four generated silos."""
        if self.silos.strip() == SYNTHETIC:
            return [f"{name}={SYNTHETIC}" for name in SYNTHETIC_SILOS]
        return [s.strip() for s in self.silos.split(",") if s.strip()]

    def silo_source(self, entry: str, state_dir: Path | None = None) -> SiloSource:
        """Resolve ``format=path`` (or ``format=synthetic``) to a loadable source."""
        fmt, _, path = entry.partition("=")
        fmt = fmt.strip().lower()
        window = str(self.raw.get(f"window.{fmt}", ""))
        if path.strip() == SYNTHETIC:
            spec = SyntheticSpec(seed=self.seed, scale=self.synthetic_scale)
            root = (state_dir or default_state_dir()) / "synthetic" / f"seed{spec.seed}-x{spec.scale:g}"
            path = str(generate_silos(root, spec)[fmt])
        custom = self.custom_format() if fmt == CUSTOM else None
        return SiloSource.parse(f"{fmt}={path}", self.data_dir, window=window, max_lines=self.max_lines, custom=custom)

    def custom_format(self) -> CustomFormat:
        """How this run's ``custom`` silos read (``custom.*``); every custom silo of a run shares them."""
        return CustomFormat.from_config(self.raw, self.data_dir)

    def detector_config(self) -> dict[str, Any]:
        prefix = f"{self.detector}."
        return {k: v for k, v in self.raw.items() if k.startswith(prefix)}


def for_nodes(config: Mapping[str, Any], nodes: int) -> dict[str, Any]:
    """The run config for a federation of ``nodes`` nodes: ``min-nodes`` never above that."""
    return dict(config) | {"min-nodes": min(int(config.get("min-nodes", nodes)), nodes)}
