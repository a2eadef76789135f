"""resume-from: a run whose server is killed after round 2 and resumed ends exactly where an uninterrupted
run ends."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
import torch
from conftest import TINY_FASTLOGAD

from fedlog.cli import APP_DIR
from fedlog.config import default_run_config
from fedlog.simulation import SimulationError, run_simulation


def _descendants(root: int) -> list[int]:
    """PIDs of every process below ``root`` (Linux /proc)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def kill_after(round_idx: int, output_dir: Path, killed: list[Path]):
    """Fault drill for ``run_simulation(watch=...)``: SIGKILL the SuperLink's whole process tree (the
    ServerApp runs in a session of its own below it) the moment a new run directory holds round
    ``round_idx``'s parameters; the run directory goes into ``killed``."""
    before = set(output_dir.glob("*"))

    def watch(link: subprocess.Popen, proc: subprocess.Popen) -> None:
        def loop() -> None:
            while proc.poll() is None:
                done = [p for p in output_dir.glob(f"*/params/round-{round_idx:03d}.pt") if p.parents[1] not in before]
                if done:
                    for pid in [*_descendants(link.pid), link.pid]:
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(pid, signal.SIGKILL)
                    killed.append(done[0].parents[1])
                    proc.kill()
                    return
                time.sleep(0.05)

        threading.Thread(target=loop, daemon=True).start()

    return watch


@pytest.mark.slow
def test_resume_from_gives_the_uninterrupted_result(tmp_path, state_dir) -> None:
    base = (
        default_run_config()
        | TINY_FASTLOGAD
        | {
            "strategy": "fedgradtrace",
            "min-nodes": 2,
            "local-epochs": 1,
            "explain.every": -1,
            "data.silos": "bgl=synthetic, spirit=synthetic",
            "data.synthetic-scale": 0.2,
            "output-dir": str(tmp_path),
        }
    )

    def run(**overrides):
        return run_simulation(APP_DIR, base | overrides, num_supernodes=2, stream=False, timeout=600).run_dir

    full = run(**{"num-server-rounds": 3})
    killed: list[Path] = []
    with pytest.raises(SimulationError):  # SuperLink + ServerApp SIGKILLed once round 2 is on disk
        run_simulation(
            APP_DIR,
            base | {"num-server-rounds": 3},
            2,
            stream=False,
            timeout=600,
            watch=kill_after(2, tmp_path, killed),
        )
    (first,) = killed
    time.sleep(3)
    assert (first / "params" / "round-002.pt").exists()
    assert not (first / "params" / "round-003.pt").exists() and not (first / "summary.json").exists()
    resumed = run(**{"num-server-rounds": 3, "resume-from": f"{first}:2"})

    expected, got = (torch.load(r / "params" / "round-003.pt") for r in (full, resumed))
    assert expected.keys() == got.keys()
    assert all(torch.equal(expected[k], got[k]) for k in expected)
    traj = [json.loads((r / "strategy" / "round-003.json").read_text())["trajectories"] for r in (full, resumed)]
    assert traj[0] == traj[1] and all(len(points) == 3 for points in traj[0].values())
    assert [json.loads(line)["round"] for line in (resumed / "rounds.jsonl").read_text().splitlines()] == [3]
