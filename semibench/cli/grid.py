"""`semibench grid`: the main job. Trains and evaluates every run of the grid, then writes the reports."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from semibench.cli.common import app, comma_list, duration, fail, machine_line, quiet_library_bars, read_experiment


@app.command()
def grid(
    config_file: Optional[Path] = typer.Option(None, "--config", help="a YAML study file (or a shipped recipe's name): config keys, grid: axes, "
                                               "eval: settings; the flags below win over it (docs/config-files.md)"),
    tasks: Optional[str] = typer.Option(None, help="comma-separated: math,if,mixed [default: mixed]"),
    objectives: Optional[str] = typer.Option(None, help="comma-separated objectives [default: dpo,grpo]"),
    sync_every: Optional[str] = typer.Option(None, "--sync-every", help="e.g. 1,10,inf; default: the paper's grid (DPO offline/semi-online/online, GRPO online)"),
    preset: Optional[str] = typer.Option(None, help="tiny | smol (CPU default) | paper (GPUs) | your own [default: the file's, else smol]"),
    seeds: Optional[str] = typer.Option(None, help="comma-separated training seeds; default: the preset's (smol: 0,1,2: seed-to-seed variance is measured)"),
    benchmarks: Optional[str] = typer.Option(None, help="comma-separated; default: the preset's"),
    set_: list[str] = typer.Option([], "--set", help="config override applied to every run"),
    eval_set: list[str] = typer.Option([], "--eval-set", help="eval setting override, e.g. --eval-set limit=50"),
    out: Path = typer.Option(Path("runs"), help="runs root"),
    leaderboard_out: Path = typer.Option(Path("leaderboards"), "--leaderboard-out", help="where the leaderboard CSVs go"),
    dry_run: bool = typer.Option(False, "--dry-run", help="print the expanded runs and an estimated time; run nothing"),
    launcher: Optional[str] = typer.Option(None, help="local (this machine, one run after another) | slurm (submitit, one job per run) [default: local]"),
    slurm_partition: Optional[str] = typer.Option(None, "--slurm-partition"),
    slurm_nodes: Optional[int] = typer.Option(None, "--slurm-nodes", help="[default: 1]"),
    slurm_gpus_per_node: Optional[int] = typer.Option(None, "--slurm-gpus-per-node", help="[default: 8]"),
    slurm_time: Optional[int] = typer.Option(None, "--slurm-time", help="minutes per job [default: 1440]"),
    slurm_cluster: Optional[str] = typer.Option(None, "--slurm-cluster", help="submitit cluster: auto (default), slurm, or local (jobs as local processes)"),
    report_to: Optional[str] = typer.Option(None, "--report-to", help="every run also logs to: comma list of tensorboard, mlflow, wandb, trackio, or none; grouped by grid (docs/trackers.md)"),
) -> None:
    """The main job: offline / semi-online / online x DPO / GRPO x tasks; train, evaluate, then leaderboard, figures and tables."""
    quiet_library_bars()
    from semibench import config
    from semibench import grid as grid_lib
    from semibench.study import plan

    try:
        study = plan(read_experiment(config_file, "grid"), {
            "tasks": comma_list(tasks), "objectives": comma_list(objectives), "sync_every": grid_lib.parse_sync_list(sync_every), "preset": preset,
            "seeds": _seeds(seeds) if seeds else None, "benchmarks": comma_list(benchmarks), "launcher": launcher,
            "slurm_partition": slurm_partition, "slurm_nodes": slurm_nodes, "slurm_gpus_per_node": slurm_gpus_per_node, "slurm_time": slurm_time,
            "slurm_cluster": slurm_cluster,
            "overrides": config.parse_set_args(set_) | ({"log.report_to": report_to} if report_to is not None else {}),
            "eval_overrides": config.parse_set_args(eval_set)})
        spec, chosen = study.spec, study.benchmarks
        rows = grid_lib.describe(spec, out)
    except ValueError as exc:  # ConfigError included
        fail(str(exc))
    _print_grid(spec, rows, chosen, study.eval_overrides.get("dtype"))
    if dry_run:
        return
    from semibench.trackers import check_installed, requested

    try:  # a --report-to tracker that is not installed: one line, nothing trained
        check_installed(requested(config.resolve(spec.preset, {**spec.overrides, "task.name": spec.tasks[0]})))
    except ValueError as exc:
        fail(str(exc))
    if study.launcher not in ("local", "slurm"):
        fail(f"--launcher must be local or slurm, got {study.launcher!r}")
    try:
        settings = grid_lib.eval_settings(spec, study.eval_overrides)
    except (TypeError, ValueError) as exc:
        fail(f"bad --eval-set: {exc}")
    if study.launcher == "slurm":
        from semibench import slurm as slurm_lib

        slurm = slurm_lib.SlurmSettings(**study.slurm)
        for cfg in slurm_lib.run_slurm(spec, out, chosen, settings, slurm, on_job_done=lambda done, total: typer.echo(f"jobs finished: {done}/{total}", err=True)):
            grid_lib.report_evaluations(cfg, out)  # the jobs trained and evaluated; --report-to gets their eval/* series here
        split = None
    else:
        split = _run_grid_locally(grid_lib, spec, rows, out, chosen, settings)
    written = grid_lib.aggregate(out, leaderboard_out)
    _print_grid_results(out, written)
    if split is not None:
        _print_wall_split(split)


def _seeds(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in text.split(",") if x)
    except ValueError:
        raise ValueError(f"--seeds takes comma-separated integers, e.g. --seeds 0,1,2 (got {text!r})") from None


def _print_grid(spec, rows: list[dict], benchmarks, eval_dtype: str | None = None) -> None:
    """The runs, their estimate, and the dtypes they resolve to here (`eval_dtype`: an --eval-set dtype, else the preset's)."""
    from rich.console import Console
    from rich.table import Table

    from semibench.grid import defaults_for

    table = Table(title=f"grid: preset {spec.preset}, {len(rows)} runs, eval on {', '.join(benchmarks)}")
    for column in ("run id", "task", "objective", "s", "regime", "steps", "seed", "est. train", "status"):
        table.add_column(column, justify="left" if column in ("run id", "task", "objective", "regime") else "right")
    for r in rows:
        table.add_row(r["run_id"], r["task"], r["objective"], r["sync_every"], r["regime"], str(r["steps"]), str(r["seed"]),
                      duration(r["seconds"]) + ("" if r["estimate"] == "measured" else "*"), "done" if r["done"] else "to run")
    console = Console(width=170)
    from semibench import config
    from semibench.hardware import resolve_dtype

    probe = config.resolve(spec.preset, {**spec.overrides, "task.name": spec.tasks[0]})  # the dtypes every run resolves to
    console.print(machine_line(generator=probe.model.generator_dtype, autocast=probe.model.autocast_dtype,
                               judge=probe.reward.dtype, eval=resolve_dtype(eval_dtype or defaults_for(spec.preset).eval.get("dtype", "auto"))),
                  markup=False, soft_wrap=True)
    console.print(table)
    left = sum(r["seconds"] for r in rows if not r["done"])
    gpus = defaults_for(spec.preset).gpus
    gpu_hours = f" = {left * gpus / 3600:,.0f} GPU hours on {gpus} GPUs" if gpus else ""
    console.print(f"estimated training time left: {duration(left)}{gpu_hours} (* modelled from the preset's throughput; otherwise measured on finished runs), plus evaluation")


def _run_grid_locally(grid_lib, spec, rows, out: Path, benchmarks, settings) -> None:
    import time

    import transformers
    from rich.console import Console

    from semibench.cli.progress import progress_view
    from semibench.wallclock import WallSplit

    transformers.utils.logging.disable_progress_bar()
    console = Console(stderr=True)
    todo_steps = sum(r["steps"] for r in rows if not r["done"])
    state = {"done": sum(r["done"] for r in rows), "current": None}
    split = WallSplit()
    # The grid's ETA: each step and evaluation left at its measured cost (wallclock.GridClock), not
    # the step rate so far, which read low (later arms step slower; the last evaluation follows the last step).
    clock = grid_lib.grid_clock(grid_lib.expand(spec), out, benchmarks, settings.judge)
    with progress_view(console) as bar:
        whole = bar.add_task("grid (steps)", total=max(todo_steps, 1), info="", eta=lambda: clock.seconds_left(time.monotonic()))
        current = bar.add_task("run", total=1, info="", visible=False)

        def status() -> str:
            left = len(rows) - state["done"] - (state["current"] is not None)
            return f"runs: {state['done']} done, {int(state['current'] is not None)} running, {left} left"

        def on_run_start(i, cfg):
            state["current"] = i
            bar.update(current, description=rows[i]["run_id"][:40], total=cfg.train.steps, completed=0, visible=True, info="")
            bar.update(whole, info=status())

        def on_step(step, row):
            bar.update(current, completed=step + 1, info=f"reward {row['reward']:.3f}  len {row['rollout_length']:.0f}")
            bar.advance(whole)

        def on_phase(text):
            bar.update(current, info=text)

        def on_run_end(i, cfg):
            state["done"] += 0 if rows[i]["done"] else 1
            state["current"] = None
            bar.update(whole, info=status())

        def on_eval(label, done, total):
            name = rows[state["current"]]["run_id"][:40] if state["current"] is not None else "seed model"
            bar.update(current, description=f"{name} eval", total=max(total, 1), completed=done, visible=True, info=label)

        grid_lib.run_local(spec, out, benchmarks, settings, grid_lib.GridHooks(on_run_start, on_step, on_phase, on_run_end, on_eval), split, clock)
        return split


def _print_wall_split(split) -> None:
    """Where the grid's time went: the phases a user can act on (engine starts, generation, training, each benchmark)."""
    import time

    from rich.console import Console
    from rich.table import Table

    wall = time.time() - split.started
    table = Table(title=f"wall split: {duration(wall)} in all (this invocation; finished work it skipped is not counted)")
    table.add_column("phase")
    table.add_column("time", justify="right")
    table.add_column("share", justify="right")
    for phase, seconds in sorted(split.seconds.items(), key=lambda kv: -kv[1]):
        table.add_row(phase, duration(seconds), f"{100 * seconds / max(wall, 1e-9):.0f}%")
    Console(width=170).print(table)


def _print_grid_results(out: Path, written: dict) -> None:
    from rich.console import Console

    console = Console(width=170)
    for path in written["leaderboards"].values():
        console.print(f"leaderboard: {path}")
        console.print(path.read_text())
    console.print(f"figures: {out / 'figures'} ({len(written['figures'])}: {', '.join(written['figures'])})")
    console.print(f"tables: {out / 'tables' / 'tables.md'}")
    if written["tables"]:
        console.print((out / "tables" / "tables.md").read_text())
    if written["signal"]:
        console.print(written["signal"].read_text())
    if written["verdicts"]:
        console.print((out / "tables" / "verdicts.md").read_text())
    if "figure" in written["verdicts"]:
        console.print(f"verdicts figure: {written['verdicts']['figure']}")
