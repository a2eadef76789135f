"""Local root cause: a client's top SHAP ids with its own templates and example raw lines.

Runs at the client only: the id -> template map and the raw lines never leave
it (the federation sees ids and numbers).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from fedlog.explain.shap_ids import IdExplanation
from fedlog.silo import PreparedSilo
from fedlog.windows import Window


@dataclass
class RootCause:
    eid: str
    template: str
    mean_shap: float
    mean_abs_shap: float
    frequency: int
    windows: int
    example: str  # "path:line: raw text" of one occurrence in an explained window


def _raw_line(path: str, lineno: int) -> str:
    with open(path, encoding="utf-8", errors="replace") as handle:
        for i, line in enumerate(handle, start=1):
            if i == lineno:
                return line.rstrip("\n")
    return ""


def _example(eid: str, windows: Sequence[Window], sources: Sequence[str], rank: list[int]) -> str:
    """The first occurrence of ``eid`` in the explained windows, most anomalous first."""
    for i in rank:
        w = windows[i]
        for event, (source, lineno) in zip(w.events, w.lines):
            if event == eid:
                path = Path(sources[source])
                return f"{path.name}:{lineno}: {_raw_line(str(path), lineno)}"
    return ""


def root_causes(
    silo: PreparedSilo, explanation: IdExplanation, windows: Sequence[Window], scores: Sequence[float]
) -> list[RootCause]:
    templates = json.loads((Path(silo.state_dir) / "templates.json").read_text())
    rank = sorted(range(len(windows)), key=lambda i: -scores[i])
    return [
        RootCause(
            eid=eid,
            template=templates.get(eid, "(not a mined template)"),
            mean_shap=float(explanation.mean_shap[k]),
            mean_abs_shap=float(explanation.mean_abs_shap[k]),
            frequency=int(explanation.frequency[k]),
            windows=int(explanation.windows[k]),
            example=_example(eid, windows, silo.sources, rank),
        )
        for k, eid in enumerate(explanation.ids)
    ]


def format_table(causes: Sequence[RootCause], width: int = 110) -> str:
    lines = [
        "| rank | event id | mean SHAP | mean abs SHAP | windows | count | template |",
        "|---|---|---|---|---|---|---|",
    ]
    for rank, c in enumerate(causes, start=1):
        lines.append(
            f"| {rank} | {c.eid} | {c.mean_shap:+.4f} | {c.mean_abs_shap:.4f} | {c.windows} | {c.frequency} "
            f"| {c.template[:width]} |"
        )
    lines += ["", "Example lines (from the most anomalous explained windows):"]
    lines += [f"  {c.eid}  {c.example[: width * 2]}" for c in causes if c.example]
    return "\n".join(lines)
