"""fedlog ServerApp: a run directory, the initial model, a recording strategy. Flower glue only."""

from __future__ import annotations

from flwr.app import ArrayRecord, ConfigRecord, Context
from flwr.serverapp import Grid, ServerApp

from fedlog.config import RunSettings
from fedlog.detectors import build_detector
from fedlog.rundir import RunDirectory
from strategies import build_strategy

app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    settings = RunSettings.from_flat(context.run_config)
    run = RunDirectory.create(settings.output_dir, f"{settings.detector}-{settings.strategy}", settings.raw)
    print(f"[fedlog] run directory: {run.path}", flush=True)
    detector = build_detector(settings.detector, settings.detector_config(), settings.seed, device="cpu")
    state, done, trajectories = detector.state(), 0, None
    if settings.resume_from:
        done, state, trajectories = RunDirectory.load_round(settings.resume_from)
        print(f"[fedlog] resuming after round {done} of {settings.resume_from}", flush=True)
    strategy = build_strategy(
        settings.strategy,
        run,
        settings.raw,
        round_offset=done,
        node_timeout=settings.node_timeout,
        fraction_train=settings.fraction_train,
        min_train_nodes=settings.min_nodes,
        min_evaluate_nodes=settings.min_nodes,
        min_available_nodes=settings.min_nodes,
    )
    if trajectories is not None:
        strategy.trajectories = trajectories
    strategy.start(
        grid=grid,
        initial_arrays=ArrayRecord(state),
        num_rounds=settings.num_rounds - done,
        train_config=ConfigRecord({"local-epochs": settings.local_epochs}),
        timeout=settings.round_timeout,
    )
    summary = run.finish(strategy.final_eval)
    overall_f1 = summary["overall"].get("f1", float("nan"))
    print(f"[fedlog] overall F1 {overall_f1:.3f}; report: {run.path / 'report.md'}", flush=True)
