"""`semibench train` (one run, resumable, torchrun-aware) and `semibench presets`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from semibench.cli.common import app, fail, is_main_rank, machine_line, read_experiment
from semibench.config import ConfigError

presets_app = typer.Typer(no_args_is_help=True, help="List and show config presets.")
app.add_typer(presets_app, name="presets")



@app.command()
def train(
    config_file: Optional[Path] = typer.Option(None, "--config", help="a YAML experiment file (or a shipped recipe's name): any config key, "
                                               "dotted or nested; precedence: preset < Table 4 row < file < --set and flags"),
    preset: Optional[str] = typer.Option(None, help="tiny (tests) | smol (SmolLM2-135M-Instruct) [default: the file's, else smol]"),
    task: Optional[str] = typer.Option(None, help="math | if | mixed"),
    objective: Optional[str] = typer.Option(None, help="dpo | grpo | group_dpo | group_dpo_grpo"),
    sync_every: Optional[str] = typer.Option(None, "--sync-every", help="1 online, k semi-online, inf offline"),
    steps: Optional[int] = typer.Option(None, help="optimizer steps"),
    seed: Optional[int] = typer.Option(None, help="random seed"),
    set_: list[str] = typer.Option([], "--set", help="override any config key: --set optim.lr=1e-6"),
    out: Path = typer.Option(Path("runs"), help="runs root directory"),
    resume: Optional[Path] = typer.Option(None, "--resume", help="continue runs/<id> from its newest state, with its own config.json"),
    report_to: Optional[str] = typer.Option(None, "--report-to", help="also log to: comma list of tensorboard, mlflow, wandb, trackio (offline by default), or none (= --set log.report_to=...)"),
) -> None:
    """Train one run: generator synced every --sync-every steps, DPO or GRPO, on math, IF or both.

    Running the same command again resumes an unfinished run (its directory has no DONE). Scale out
    with `torchrun --nproc_per_node=N -m semibench train ...` (FSDP2; gloo on CPU, NCCL on GPUs).
    """
    from semibench import config

    if resume is not None:
        if preset is not None or set_ or any(v is not None for v in (config_file, task, objective, sync_every, steps, seed)):
            fail("--resume takes the run's own config.json; drop the other options (a changed config is a new run)")
        cfg, out = _resumable(resume)
        if report_to is not None:  # where metrics go is not part of the run: allowed with --resume
            try:
                cfg = config.apply_overrides(cfg, {"log.report_to": report_to})
                config.validate(cfg)
            except ConfigError as exc:
                fail(str(exc))
        _run_training(cfg, out)
        return
    try:
        experiment = read_experiment(config_file, "train")
        overrides = experiment.run | config.parse_set_args(set_)
        for key, value in (("task.name", task), ("loss.objective", objective), ("train.sync_every", sync_every), ("train.steps", steps), ("train.seed", seed),
                           ("log.report_to", report_to)):
            if value is not None:
                overrides[key] = value
        cfg = config.resolve(preset or experiment.preset or "smol", overrides)
    except ConfigError as exc:
        fail(str(exc))
    _run_training(cfg, out)


def _resumable(run_dir: Path):
    """The config of an existing run directory and its runs root; one-line errors for anything else."""
    import json

    from semibench import config
    from semibench.runs import RunDir, run_id

    saved = RunDir.at(run_dir).config_path
    if not saved.is_file():
        fail(f"no run to resume at {run_dir}: {saved} does not exist (pass a runs/<id> directory)")
    try:
        cfg = RunDir.at(run_dir).read_config()
        config.validate(cfg)
    except (ConfigError, json.JSONDecodeError) as exc:
        fail(f"cannot resume {run_dir}: its config.json does not load ({exc})")
    if run_id(cfg) != run_dir.name:
        fail(f"cannot resume {run_dir}: its config.json now hashes to run id {run_id(cfg)} (written by another semibench version); start it as a new run")
    return cfg, run_dir.parent


def _run_training(cfg, out: Path) -> None:
    import transformers
    from rich.console import Console

    from semibench.cli.progress import progress_view
    from semibench.config import regime_label
    from semibench.runs import RunDir, is_done
    from semibench.trackers import check_installed, requested
    from semibench.training.train import train as train_run

    try:  # a --report-to tracker that is not installed: one line before anything else is printed or trained
        check_installed(requested(cfg))
    except ConfigError as exc:
        fail(str(exc))
    transformers.utils.logging.disable_progress_bar()  # our bar is the one that matters
    if not is_main_rank():  # torchrun: rank 0 shows progress; the others just train
        try:
            train_run(cfg, out)
        except ConfigError as exc:
            fail(str(exc))
        return
    console = Console(stderr=True)
    run = RunDir(out, cfg)
    if is_done(run.path):
        console.print(f"already done: {run.path}")
        return
    sync = "inf" if cfg.train.sync_every is None else cfg.train.sync_every
    m = cfg.model
    console.print(machine_line(generator=m.generator_dtype, autocast=m.autocast_dtype, master=m.dtype, judge=cfg.reward.dtype), markup=False, soft_wrap=True)
    from semibench.config import warnings_for

    for line in warnings_for(cfg):
        console.print(f"warning: {line}", style="yellow", markup=False, soft_wrap=True)
    console.print(f"[bold]{run.path.name}[/]: {cfg.loss.objective} on {cfg.task.name}, s={sync} ({regime_label(cfg.train.sync_every)}), model {cfg.model.name}, "
                  f"engine {cfg.train.engine}{' (pipelined)' if cfg.train.pipeline and cfg.train.sync_every != 1 else ''}")
    try:
        with progress_view(console) as bar:
            job = bar.add_task("train", total=cfg.train.steps, info="loading data and models")

            def on_step(step: int, row: dict) -> None:
                info = f"reward {row['reward']:.3f}  valid {row['frac_valid_prompts']:.2f}  len {row['rollout_length']:.0f}"
                bar.update(job, completed=step + 1, info=info)

            path = train_run(cfg, out, progress=on_step)
    except ConfigError as exc:  # after the bar is closed, so the error is the last line printed
        fail(str(exc))
    summary = (path / "summary.json").read_text()
    console.print(f"done: {path}\n{summary}")


@presets_app.command("list")
def presets_list() -> None:
    """Names of the built-in presets."""
    from semibench.presets import PRESETS

    for name in PRESETS:
        typer.echo(name)


@presets_app.command("show")
def presets_show(
    name: str = typer.Argument("smol"),
    task: str = typer.Option("math"),
    objective: str = typer.Option("dpo"),
    output_format: str = typer.Option("text", "--format", help="text (key = value, grid defaults, notes) | yaml (a file `semibench train --config` runs)"),
) -> None:
    """Every resolved config key of a preset for one task and objective, its grid defaults, and why."""
    import dataclasses

    from semibench import config
    from semibench.grid import GRID_DEFAULTS
    from semibench.presets import PRESET_NOTES

    if output_format not in ("text", "yaml"):
        fail(f"--format must be text or yaml, got {output_format!r}")
    try:
        portable = config.layer(name, {"task.name": task, "loss.objective": objective})
        cfg = config.resolve_machine(portable)
    except ConfigError as exc:
        fail(str(exc))
    if output_format == "yaml":
        typer.echo(_preset_yaml(portable, cfg, name, task, objective), nl=False)
        return
    typer.echo(f"# {machine_line()}: `auto` dtypes resolved for it below")
    for key, value in config.flatten(cfg).items():
        typer.echo(f"{key} = {value}")
    if name in GRID_DEFAULTS:  # what `semibench grid --preset NAME` runs and how it evaluates
        for key, value in _flatten_dict(dataclasses.asdict(GRID_DEFAULTS[name]), "grid."):
            typer.echo(f"{key} = {value}")
    notes = PRESET_NOTES.get(name)
    if notes:
        typer.echo("\nwhere the paper is silent or its text and code disagree (paper.md §6), this preset chose:")
        for key, why in notes.items():
            typer.echo(f"  {key}: {why}")


def _preset_yaml(portable, here, name: str, task: str, objective: str) -> str:
    """The preset's config for (task, objective) as a runnable file: `auto` kept (it resolves on the machine that
    runs the file), with what it is here as a comment; the preset's notes as the header."""
    from semibench import config
    from semibench.configfile import dump
    from semibench.presets import PRESET_NOTES

    header = [f"`semibench presets show {name} --task {task} --objective {objective} --format yaml`: every key of that run.",
              "Run it with `semibench train --config FILE`; precedence: preset < Table 4 row < this file < --set and flags.",
              "`auto` resolves on the machine that runs the file; `# here:` says what it was on the one that wrote it,",
              machine_line()]
    notes = PRESET_NOTES.get(name, {})
    if notes:
        header += ["", "Where the paper is silent or its text and code disagree (paper.md §6), this preset chose:"]
        header += [f"  {key}: {why}" for key, why in notes.items()]
    resolved = config.flatten(here)
    comments = {k: f"here: {resolved[k] or 'none'}" for k, v in config.flatten(portable).items() if v != resolved[k]}
    return dump(portable, header, comments)


def _flatten_dict(values: dict, prefix: str):
    for key, value in values.items():
        if isinstance(value, dict) and value:
            yield from _flatten_dict(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value

