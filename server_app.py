"""fedlog ServerApp: a run directory, the initial model, a recording strategy. Flower glue only."""

from __future__ import annotations

from flwr.app import ArrayRecord, ConfigRecord, Context
from flwr.serverapp import Grid, ServerApp

from fedlog import protocol
from fedlog.config import RunSettings
from fedlog.deploy import prompt_grid
from fedlog.rundir import RunDirectory
from fedlog.session import new_detector
from strategies import build_strategy

app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    grid = prompt_grid(grid)
    settings = RunSettings.from_flat(context.run_config)
    run = RunDirectory.create(settings.output_dir, f"{settings.detector}-{settings.strategy}", settings.raw)
    print(f"[fedlog] run directory: {run.path}", flush=True)
    state, done, strategy_state = new_detector(settings, device="cpu").state(), 0, {}
    if settings.resume_from:
        done, state, strategy_state = RunDirectory.load_round(settings.resume_from)
        print(f"[fedlog] resuming after round {done} of {settings.resume_from}", flush=True)
    strategy = build_strategy(settings, run, round_offset=done)
    strategy.resume(strategy_state)
    strategy.start(
        grid=grid,
        initial_arrays=ArrayRecord(state),
        num_rounds=settings.num_rounds - done,
        train_config=ConfigRecord({protocol.LOCAL_EPOCHS: settings.local_epochs}),
        timeout=settings.round_timeout,
    )
    summary = run.finish(strategy.final_eval, strategy.report_extra())
    overall_f1 = summary["overall"].get("f1", float("nan"))
    print(f"[fedlog] overall F1 {overall_f1:.3f}; report: {run.path / 'report.md'}", flush=True)
