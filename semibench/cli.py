"""The `semibench` command. Each command parses, resolves a config and calls one library function.

Heavy modules (torch, transformers) are imported inside commands so `semibench --help` is instant.
User mistakes (`ConfigError`) become one red line and exit code 2.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Optional

import typer

from semibench.config import ConfigError

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Offline, semi-online and online DPO/GRPO for LLMs.")
presets_app = typer.Typer(no_args_is_help=True, help="List and show config presets.")
app.add_typer(presets_app, name="presets")
bench_app = typer.Typer(no_args_is_help=True, help="Benchmarks that print tables.")
app.add_typer(bench_app, name="bench")


def _is_main_rank() -> bool:
    """Rank 0, or not launched by torchrun: the process that talks to the user."""
    return os.environ.get("RANK", "0") == "0"


def _fail(message: str) -> None:
    if _is_main_rank():  # under torchrun every rank fails alike; say it once
        typer.secho(f"error: {message}", fg="red", err=True)
    raise typer.Exit(2)


@app.command()
def train(
    preset: Optional[str] = typer.Option(None, help="tiny (tests) | smol (SmolLM2-135M-Instruct) [default: smol]"),
    task: Optional[str] = typer.Option(None, help="math | if | mixed"),
    objective: Optional[str] = typer.Option(None, help="dpo | grpo | group_dpo | group_dpo_grpo"),
    sync_every: Optional[str] = typer.Option(None, "--sync-every", help="1 online, k semi-online, inf offline"),
    steps: Optional[int] = typer.Option(None, help="optimizer steps"),
    seed: Optional[int] = typer.Option(None, help="random seed"),
    set_: list[str] = typer.Option([], "--set", help="override any config key: --set optim.lr=1e-6"),
    out: Path = typer.Option(Path("runs"), help="runs root directory"),
    resume: Optional[Path] = typer.Option(None, "--resume", help="continue runs/<id> from its newest state, with its own config.json"),
) -> None:
    """Train one run: generator synced every --sync-every steps, DPO or GRPO, on math, IF or both.

    Running the same command again resumes an unfinished run (its directory has no DONE). Scale out
    with `torchrun --nproc_per_node=N -m semibench train ...` (FSDP2; gloo on CPU, NCCL on GPUs).
    """
    from semibench import config

    if resume is not None:
        if preset is not None or set_ or any(v is not None for v in (task, objective, sync_every, steps, seed)):
            _fail("--resume takes the run's own config.json; drop the other options (a changed config is a new run)")
        cfg, out = _resumable(resume)
        _run_training(cfg, out)
        return
    try:
        overrides = config.parse_set_args(set_)
        for key, value in (("task.name", task), ("loss.objective", objective), ("train.sync_every", sync_every), ("train.steps", steps), ("train.seed", seed)):
            if value is not None:
                overrides[key] = value
        cfg = config.resolve(preset or "smol", overrides)
    except ConfigError as exc:
        _fail(str(exc))
    _run_training(cfg, out)


def _resumable(run_dir: Path):
    """The config of an existing run directory and its runs root; one-line errors for anything else."""
    import json

    from semibench import config
    from semibench.runs import run_id

    saved = run_dir / "config.json"
    if not saved.is_file():
        _fail(f"no run to resume at {run_dir}: {saved} does not exist (pass a runs/<id> directory)")
    try:
        cfg = config.from_dict(json.loads(saved.read_text()))
        config.validate(cfg)
    except (ConfigError, json.JSONDecodeError) as exc:
        _fail(f"cannot resume {run_dir}: its config.json does not load ({exc})")
    if run_id(cfg) != run_dir.name:
        _fail(f"cannot resume {run_dir}: its config.json now hashes to run id {run_id(cfg)} (written by another semibench version); start it as a new run")
    return cfg, run_dir.parent


def _run_training(cfg, out: Path) -> None:
    import transformers
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from semibench.config import regime_label
    from semibench.runs import RunDir, is_done
    from semibench.train import train as train_run

    transformers.utils.logging.disable_progress_bar()  # our bar is the one that matters
    if not _is_main_rank():  # torchrun: rank 0 shows progress; the others just train
        try:
            train_run(cfg, out)
        except ConfigError as exc:
            _fail(str(exc))
        return
    console = Console(stderr=True)
    run = RunDir(out, cfg)
    if is_done(run.path):
        console.print(f"already done: {run.path}")
        return
    sync = "inf" if cfg.train.sync_every is None else cfg.train.sync_every
    console.print(f"[bold]{run.path.name}[/]: {cfg.loss.objective} on {cfg.task.name}, s={sync} ({regime_label(cfg.train.sync_every)}), model {cfg.model.name}, "
                  f"engine {cfg.train.engine}{' (pipelined)' if cfg.train.pipeline and cfg.train.sync_every != 1 else ''}")
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), TextColumn("{task.fields[info]}")]
    try:
        with Progress(*columns, console=console, transient=False) as bar:
            job = bar.add_task("train", total=cfg.train.steps, info="loading data and models")

            def on_step(step: int, row: dict) -> None:
                info = f"reward {row['reward']:.3f}  valid {row['frac_valid_prompts']:.2f}  len {row['rollout_length']:.0f}"
                bar.update(job, completed=step + 1, info=info)

            path = train_run(cfg, out, progress=on_step)
    except ConfigError as exc:  # after the bar is closed, so the error is the last line printed
        _fail(str(exc))
    summary = (path / "summary.json").read_text()
    console.print(f"done: {path}\n{summary}")


@presets_app.command("list")
def presets_list() -> None:
    """Names of the built-in presets."""
    from semibench.config import PRESETS

    for name in PRESETS:
        typer.echo(name)


@presets_app.command("show")
def presets_show(
    name: str = typer.Argument("smol"),
    task: str = typer.Option("math"),
    objective: str = typer.Option("dpo"),
) -> None:
    """Every resolved config key of a preset for one task and objective, its grid defaults, and why."""
    import dataclasses

    from semibench import config
    from semibench.grid import GRID_DEFAULTS

    try:
        cfg = config.resolve(name, {"task.name": task, "loss.objective": objective})
    except ConfigError as exc:
        _fail(str(exc))
    for key, value in config.flatten(cfg).items():
        typer.echo(f"{key} = {value}")
    if name in GRID_DEFAULTS:  # what `semibench grid --preset NAME` runs and how it evaluates
        for key, value in _flatten_dict(dataclasses.asdict(GRID_DEFAULTS[name]), "grid."):
            typer.echo(f"{key} = {value}")
    notes = config.PRESET_NOTES.get(name)
    if notes:
        typer.echo("\nwhere the paper is silent or its text and code disagree (paper.md §6), this preset chose:")
        for key, why in notes.items():
            typer.echo(f"  {key}: {why}")


def _flatten_dict(values: dict, prefix: str):
    for key, value in values.items():
        if isinstance(value, dict) and value:
            yield from _flatten_dict(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


@bench_app.command("step")
def bench_step(
    preset: str = typer.Option("smol"),
    task: str = typer.Option("math"),
    steps: int = typer.Option(3, help="steps per objective; the first is excluded from the medians"),
    set_: list[str] = typer.Option([], "--set"),
) -> None:
    """Seconds per online DPO and GRPO step, split into sync / generate / reward / train."""
    import transformers
    from rich.console import Console
    from rich.table import Table

    from semibench import bench, config

    transformers.utils.logging.disable_progress_bar()
    try:
        rows = bench.step_breakdown(preset, task, steps, config.parse_set_args(set_))
    except ConfigError as exc:
        _fail(str(exc))
    table = Table(title=f"one online step, preset {preset}, task {task} (medians)")
    for column in ("objective", "steps", "sync s", "generate s", "reward s", "train s", "total s", "gen tok/s", "tokens", "reward"):
        table.add_column(column, justify="right")
    for r in rows:
        table.add_row(r["objective"], str(r["steps"]), *(f"{r[k]:.2f}" for k in bench.PHASES), f"{r['total_s']:.2f}",
                      f"{r['tokens_per_s']:.1f}", f"{r['generated_tokens']:.0f}", f"{r['reward']:.3f}")
    Console(width=160).print(table)


def _table(title: str, columns: list[str], rows: list[list], note: str = "") -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, caption=note or None)
    for i, column in enumerate(columns):
        table.add_column(column, justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*("-" if v is None else f"{v:.2f}" if isinstance(v, float) else str(v) for v in row))
    Console(width=180).print(table)


def _bench_setup():
    import transformers

    transformers.utils.logging.disable_progress_bar()
    import logging

    logging.getLogger("transformers").setLevel(logging.ERROR)


@bench_app.command("pipeline")
def bench_pipeline(
    preset: str = typer.Option("smol"),
    steps: int = typer.Option(16),
    sync_every: str = typer.Option("1,4,8,16", "--sync-every", help="comma-separated s values; the first is the baseline"),
    set_: list[str] = typer.Option([], "--set"),
    json_out: Optional[Path] = typer.Option(None, "--json", help="also write the rows and every run's per-step metrics here"),
) -> None:
    """Wall time of the same run (same seeds) at each s on the vLLM engine with pipelined windows."""
    import json

    from semibench import bench, config

    _bench_setup()
    try:
        rows = bench.pipeline(preset, steps, [v for v in sync_every.split(",") if v], config.parse_set_args(set_))
    except ConfigError as exc:
        _fail(str(exc))
    if json_out is not None:
        json_out.write_text(json.dumps(rows, indent=1))
    _table(f"pipelined windows: {steps} steps of {preset} on vLLM (sums over steps, seconds)",
           ["s", "wall s", "vs first", "generate wait", "generator busy", "reward", "train", "sync", "tokens", "reward mean", "load 1/5/15 min"],
           [[r["s"], r["wall_s"], r["ratio"], r["time/generate"], r["time/generator_busy"], r["time/reward"], r["time/train"], r["time/sync"],
             int(r["generated_tokens"]), r["reward"], r["load"]] for r in rows],
           f"engine start (once, not in the walls): {rows[0]['engine_start_s']:.0f} s")
    means = bench.mean_by_s(rows)
    if any(m["runs"] > 1 for m in means):
        _table("mean over the runs of each s", ["s", "runs", "wall s", "vs first", "generate wait", "generator busy", "reward", "train", "sync"],
               [[m["s"], m["runs"], m["wall_s"], m["ratio"], m["time/generate"], m["time/generator_busy"], m["time/reward"], m["time/train"], m["time/sync"]] for m in means])


@bench_app.command("trl")
def bench_trl(
    objective: str = typer.Option("grpo", help="grpo | dpo (online DPO vs TRL's OnlineDPOTrainer)"),
    preset: str = typer.Option("smol"),
    steps: int = typer.Option(3, help="steps per block; each block's first step is excluded"),
    rounds: int = typer.Option(2, help="times the sides alternate"),
    sides: str = typer.Option("trl,semibench-hf,semibench-vllm"),
) -> None:
    """Samples/s against TRL 1.16 (pip install trl==1.16.0): same model, prompts, lengths, samples, batch."""
    from semibench import bench

    if objective not in bench.TRL_SHAPES:
        _fail(f"--objective must be one of {', '.join(bench.TRL_SHAPES)}")
    chosen = [x for x in sides.split(",") if x]
    if "trl" in chosen:
        import importlib.util

        if importlib.util.find_spec("trl") is None:
            _fail("the TRL comparison needs TRL: pip install trl==1.16.0 (a bench-only dependency)")
    _bench_setup()
    rows = bench.against_trl(objective, preset, steps, rounds, chosen)
    shape = bench.TRL_SHAPES[objective]
    _table(f"online {objective.upper()} vs TRL 1.16, {preset}: {shape['prompts']} prompts x {shape['samples']} samples/step (medians)",
           ["side", "steps", "s/step", "samples/s", "vs TRL", "generate", "reward", "train", "sync"],
           [[r["side"], r["steps"], r["s_per_step"], r["samples_per_s"], r["ratio"], r["time/generate"], r["time/reward"], r["time/train"], r["time/sync"]] for r in rows],
           f"load 1/5/15 min between blocks: {rows[0]['load']}")


@bench_app.command("sync")
def bench_sync(
    preset: str = typer.Option("smol"),
    reps: int = typer.Option(5),
    engines: str = typer.Option("vllm,hf"),
) -> None:
    """Seconds per generator weight sync against a plain in-memory copy (clone / copy_) of the same state dict."""
    from semibench import bench

    _bench_setup()
    rows = bench.sync(preset, reps, [e for e in engines.split(",") if e])
    _table(f"weight sync, {preset}: {rows[0]['state_mb']:.0f} MB fp32 trainer state -> {rows[0]['generator_dtype']} generator",
           ["what", "median s", "min s", "max s", "n", "x clone", "x copy_"],
           [[r["what"], r["median_s"], r["min_s"], r["max_s"], r["n"], r["vs_clone"], r["vs_copy_"]] for r in rows],
           f"load 1/5/15 min: {rows[0]['load']}")


@bench_app.command("placement")
def bench_placement(
    reps: int = typer.Option(5, help="trainer steps per measurement"),
    rounds: int = typer.Option(2, help="times the placements alternate"),
) -> None:
    """The trainer's step time next to the vLLM engine: in its process, or in a process of its own."""
    from semibench import bench

    rows = bench.placement(reps, rounds)
    _table("trainer fwd+bwd of one smol micro-batch (4 x 228 tokens, bf16 autocast) next to a vLLM engine (medians)",
           ["engine", "train step s", "x alone", "torch threads", "generate alone s", "generate while training s", "both wall s", "train alone s"],
           [[r["mode"], r["train_step_s"], r["vs_alone"], r["torch_threads"], r.get("generate_alone_s"), r.get("generate_concurrent_s"),
             r.get("both_wall_s"), r.get("train_alone_s")] for r in rows],
           f"load 1/5/15 min between runs: {rows[0]['load']}")


score_app = typer.Typer(no_args_is_help=True, help="Score existing judge outputs (no generation, no judge calls).")
app.add_typer(score_app, name="score")


@score_app.command("alpaca_eval")
def score_alpaca_eval(
    annotations: Path = typer.Option(..., help="alpaca-eval annotations.json (preference 1 = baseline wins, 2 = model wins)"),
    df_gamed: Optional[Path] = typer.Option(None, "--df-gamed", help="hub df_gamed.csv; without it no length-controlled win rate"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
) -> None:
    """AlpacaEval 2.0 win rate and standard error, computed by alpaca-eval's own metric code."""
    import json

    from semibench.scoring import alpaca

    try:
        rows = alpaca.load_annotations(annotations)
        result = alpaca.alpaca_winrate(rows)
        lc, note = alpaca.length_controlled_winrate(rows, df_gamed)
    except (OSError, ValueError) as exc:
        _fail(str(exc))
    result.update({"length_controlled_winrate": None, "lc_standard_error": None, **(lc or {}), "lc_note": note})
    if as_json:
        typer.echo(json.dumps(result))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="AlpacaEval 2.0")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in result.items():
        if key != "lc_note":
            table.add_row(key, "-" if value is None else f"{value:.4f}" if isinstance(value, float) else str(value))
    console = Console()
    console.print(table)
    console.print(note)


@score_app.command("arena_hard")
def score_arena_hard(
    judgments: Path = typer.Option(..., help="arena-hard model_judgment/<judge>/ directory of <model>.jsonl files"),
    baseline: str = typer.Option("gpt-4-0314", help="the model in position A of game 1 (anchored at 1000, i.e. 50%)"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
) -> None:
    """Arena-Hard-Auto v0.1 score: Bradley–Terry win rate vs the baseline with a 95% bootstrap CI (100 rounds)."""
    import json

    from semibench.scoring.arena_hard import score_judgments

    try:
        scores = score_judgments(judgments, baseline)
    except (OSError, ValueError) as exc:
        _fail(str(exc))
    if as_json:
        typer.echo(json.dumps(scores))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Arena-Hard v0.1 vs {baseline}: {judgments}")
    for column in ("model", "score", "95% CI", "questions", "skipped games"):
        table.add_column(column, justify="left" if column == "model" else "right")
    for model, s in sorted(scores.items(), key=lambda kv: -1 if kv[1]["score"] is None else kv[1]["score"], reverse=True):
        ci = "-" if s["score"] is None else f"({s['lower'] - s['score']:+.1f}, {s['upper'] - s['score']:+.1f})"
        table.add_row(model, "-" if s["score"] is None else f"{s['score']:.1f}", ci, str(s["n"]), str(s["skipped"]))
    Console().print(table)


@app.command("eval")
def eval_(
    checkpoint: str = typer.Argument(..., help="a checkpoint directory (runs/<id>/checkpoints/step_N or any HF dir), or smollm2 / tiny"),
    benchmarks: str = typer.Option("math_heldout,gsm8k,math500,ifeval", help="comma-separated: math_heldout,gsm8k,math500,amc23,numina_test,numina_valid,ifeval,alpaca_eval,arena_hard,wildchat_valid"),
    samples: int = typer.Option(1, "--samples", help="samples per prompt (avg@N; paper: 50)"),
    temperature: float = typer.Option(0.0, help="0 = greedy (paper: 0.6)"),
    top_p: float = typer.Option(1.0, "--top-p", help="(paper: 0.9)"),
    max_new_tokens: int = typer.Option(1024, "--max-new-tokens", help="per completion, every benchmark"),
    limit: Optional[int] = typer.Option(None, help="first N prompts of each benchmark"),
    judge: Optional[str] = typer.Option(None, help="openai:<model> | local:<path|smollm2> | rm:<path> (alpaca_eval, arena_hard)"),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", envvar="SEMIBENCH_DATA_DIR", help="local benchmark data (default: ../shared/data, then the HF hub)"),
    engine: str = typer.Option("auto", help="auto | hf | vllm"),
    seed: int = typer.Option(0),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="sequences per generate call (default: 32 on HF, 512 on vLLM)"),
    dtype: str = typer.Option("bfloat16", help="generation dtype"),
    judge_max_new_tokens: int = typer.Option(4096, "--judge-max-new-tokens", help="Arena-Hard judgment length"),
    heldout_size: int = typer.Option(100, "--heldout-size", help="math_heldout problems"),
    heldout_sources: str = typer.Option("easy_arithmetic", "--heldout-sources", help="math_heldout sources of a non-run checkpoint"),
    heldout_template: str = typer.Option("paper", "--heldout-template", help="math_heldout prompt template of a non-run checkpoint"),
    reward_model: Optional[str] = typer.Option(None, "--reward-model", help="wildchat_valid's scorer (default: the run's reward.reward_model)"),
    rm_cls_token: str = typer.Option("", "--rm-cls-token", help="with --reward-model: Athene-style CLS token"),
    chat_template: str = typer.Option("", "--chat-template", help="prompt with this tasks/templates.yaml chat template (e.g. llama3) instead of the checkpoint's own"),
    out_dir: Optional[Path] = typer.Option(None, "--out-dir", help="default: runs/<id>/eval/step_N, or <checkpoint>/eval"),
) -> None:
    """Score a checkpoint: MATH-500, GSM8K, IFEval (lm-eval), AMC23, held-out math, AlpacaEval 2.0, Arena-Hard v0.1."""
    import logging

    import transformers
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from semibench import evaluate as ev

    transformers.utils.logging.disable_progress_bar()
    chosen = [b for b in benchmarks.split(",") if b]
    try:
        settings = ev.EvalSettings(
            samples_per_prompt=samples, temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens, limit=limit, judge=judge,
            data_dir=data_dir, engine=engine, seed=seed, batch_size=batch_size, dtype=dtype, judge_max_new_tokens=judge_max_new_tokens,
            heldout_size=heldout_size, heldout_sources=heldout_sources, heldout_template=heldout_template,
            reward_model=reward_model, rm_cls_token=rm_cls_token, chat_template=chat_template,
        )
        ev.check_settings(settings)
        resolved = ev.resolve_checkpoint(checkpoint)
        where = out_dir or ev.eval_dir(resolved)
        skipped = ev.unavailable(chosen, settings, resolved, where)
    except ConfigError as exc:
        _fail(str(exc))
    if len(skipped) == len(set(chosen)):
        _fail("; ".join(skipped.values()))
    for line in skipped.values():  # plain echo: one unwrapped line each
        typer.secho(f"skipped: {line}", fg="yellow", err=True)
    console = Console(stderr=True)
    # The skips found up front were printed above; one found once a benchmark ran (a malformed file) is logged as an error.
    log = logging.getLogger("semibench.evaluate")
    log.setLevel(logging.ERROR)
    echo = logging.StreamHandler(sys.stderr)
    log.addHandler(echo)
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn()]
    try:
        with Progress(*columns, console=console) as bar:
            jobs: dict[str, int] = {}

            def on_progress(label: str, done: int, total: int) -> None:
                if label not in jobs:
                    jobs[label] = bar.add_task(label, total=total)
                bar.update(jobs[label], completed=done, total=total)

            results = ev.evaluate(checkpoint, [b for b in chosen if b not in skipped], settings, out_dir, on_progress)
    except ConfigError as exc:
        _fail(str(exc))
    finally:
        log.removeHandler(echo)
    _print_eval(results, where)


def _print_eval(results: dict, where: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="semibench eval")
    for column in ("benchmark", "score", "± stderr / 95% CI", "metric", "n", "x N", "judge", "seconds"):
        table.add_column(column, justify="left" if column in ("benchmark", "metric", "judge") else "right")
    for bench, r in results.items():
        if r["score"] is None:
            spread = "-"
        elif r["ci_lower"] is not None:
            spread = f"({r['ci_lower'] - r['score']:+.1f}, {r['ci_upper'] - r['score']:+.1f})"
        else:
            spread = "-" if r["stderr"] is None else f"± {r['stderr']:.2f}"
        score = "-" if r["score"] is None else f"{r['score']:.2f}"
        table.add_row(bench, score, spread, r["primary_metric"], str(r["n"]), str(r["samples_per_prompt"]), r["judge"] or "-", f"{r['seconds']:.0f}")
    Console().print(table)
    typer.echo(f"results and samples: {where}")


@app.command()
def grid(
    tasks: str = typer.Option("mixed", help="comma-separated: math,if,mixed"),
    objectives: str = typer.Option("dpo,grpo", help="comma-separated objectives"),
    sync_every: Optional[str] = typer.Option(None, "--sync-every", help="e.g. 1,10,inf; default: the paper's grid (DPO offline/semi-online/online, GRPO online)"),
    preset: str = typer.Option("smol", help="tiny | smol (CPU default) | paper (GPUs) | your own"),
    seeds: str = typer.Option("0", help="comma-separated training seeds"),
    benchmarks: Optional[str] = typer.Option(None, help="comma-separated; default: the preset's"),
    set_: list[str] = typer.Option([], "--set", help="config override applied to every run"),
    eval_set: list[str] = typer.Option([], "--eval-set", help="eval setting override, e.g. --eval-set limit=50"),
    out: Path = typer.Option(Path("runs"), help="runs root"),
    leaderboard_out: Path = typer.Option(Path("leaderboards"), "--leaderboard-out", help="where the leaderboard CSVs go"),
    dry_run: bool = typer.Option(False, "--dry-run", help="print the expanded runs and an estimated time; run nothing"),
    launcher: str = typer.Option("local", help="local (this machine, one run after another) | slurm (submitit, one job per run)"),
    slurm_partition: str = typer.Option("", "--slurm-partition"),
    slurm_nodes: int = typer.Option(1, "--slurm-nodes"),
    slurm_gpus_per_node: int = typer.Option(8, "--slurm-gpus-per-node"),
    slurm_time: int = typer.Option(24 * 60, "--slurm-time", help="minutes per job"),
    slurm_cluster: Optional[str] = typer.Option(None, "--slurm-cluster", help="submitit cluster: auto (default), slurm, or local (jobs as local processes)"),
) -> None:
    """The main job: offline / semi-online / online x DPO / GRPO x tasks; train, evaluate, then leaderboard, figures and tables."""
    from semibench import config, grid as grid_lib

    try:
        spec = grid_lib.GridSpec(
            tasks=tuple(t for t in tasks.split(",") if t),
            objectives=tuple(o for o in objectives.split(",") if o),
            sync_every=grid_lib.parse_sync_list(sync_every),
            preset=preset,
            seeds=tuple(int(x) for x in seeds.split(",") if x),
            overrides=config.parse_set_args(set_),
        )
        rows = grid_lib.describe(spec, out)
        chosen = grid_lib.with_defaults(spec, benchmarks)
    except ValueError as exc:  # ConfigError included
        _fail(str(exc))
    _print_grid(spec, rows, chosen)
    if dry_run:
        return
    if launcher not in ("local", "slurm"):
        _fail(f"--launcher must be local or slurm, got {launcher!r}")
    try:
        settings = grid_lib.eval_settings(spec, config.parse_set_args(eval_set))
    except (TypeError, ValueError) as exc:
        _fail(f"bad --eval-set: {exc}")
    if launcher == "slurm":
        slurm = grid_lib.SlurmSettings(slurm_partition, slurm_nodes, slurm_gpus_per_node, time_min=slurm_time, cluster=slurm_cluster)
        grid_lib.run_slurm(spec, out, chosen, settings, slurm, on_job_done=lambda done, total: typer.echo(f"jobs finished: {done}/{total}", err=True))
    else:
        _run_grid_locally(grid_lib, spec, rows, out, chosen, settings)
    written = grid_lib.aggregate(out, leaderboard_out)
    _print_grid_results(out, written)


def _print_grid(spec, rows: list[dict], benchmarks) -> None:
    from rich.console import Console
    from rich.table import Table

    from semibench.grid import defaults_for

    table = Table(title=f"grid: preset {spec.preset}, {len(rows)} runs, eval on {', '.join(benchmarks)}")
    for column in ("run id", "task", "objective", "s", "regime", "steps", "seed", "est. train", "status"):
        table.add_column(column, justify="left" if column in ("run id", "task", "objective", "regime") else "right")
    for r in rows:
        table.add_row(r["run_id"], r["task"], r["objective"], r["sync_every"], r["regime"], str(r["steps"]), str(r["seed"]),
                      _duration(r["seconds"]) + ("" if r["estimate"] == "measured" else "*"), "done" if r["done"] else "to run")
    console = Console(width=170)
    console.print(table)
    left = sum(r["seconds"] for r in rows if not r["done"])
    gpus = defaults_for(spec.preset).gpus
    gpu_hours = f" = {left * gpus / 3600:,.0f} GPU hours on {gpus} GPUs" if gpus else ""
    console.print(f"estimated training time left: {_duration(left)}{gpu_hours} (* modelled from the preset's throughput; otherwise measured on finished runs), plus evaluation")


def _duration(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"


def _run_grid_locally(grid_lib, spec, rows, out: Path, benchmarks, settings) -> None:
    import transformers
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    transformers.utils.logging.disable_progress_bar()
    console = Console(stderr=True)
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), TextColumn("{task.fields[info]}")]
    todo_steps = sum(r["steps"] for r in rows if not r["done"])
    state = {"done": sum(r["done"] for r in rows), "current": None}
    with Progress(*columns, console=console) as bar:
        whole = bar.add_task("grid (steps)", total=max(todo_steps, 1), info="")
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

        try:
            grid_lib.run_local(spec, out, benchmarks, settings, grid_lib.GridHooks(on_run_start, on_step, on_phase, on_run_end))
        except ConfigError as exc:
            raise exc


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


@app.command("select")
def select(
    run: Path = typer.Argument(..., help="a run directory, runs/<id>"),
    by: str = typer.Option(..., "--by", help="the benchmark whose score picks: numina_valid (math), wildchat_valid (chat), or any evaluated one"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
) -> None:
    """The run's best evaluated checkpoint by one benchmark's score: how the paper picked checkpoints."""
    import json

    from semibench.results import select_checkpoint

    try:
        chosen = select_checkpoint(run, by)
    except ConfigError as exc:
        _fail(str(exc))
    best = chosen.results[chosen.best_step]
    if as_json:
        typer.echo(json.dumps({"run": str(chosen.run.path), "by": chosen.key, "best_step": chosen.best_step, "checkpoint": str(chosen.checkpoint),
                               "score": best["score"], "stderr": best.get("stderr"), "primary_metric": best.get("primary_metric"),
                               "scores": {str(step): r["score"] for step, r in chosen.results.items()}}))
        return
    from rich.console import Console
    from rich.table import Table

    metric = f" ({best['primary_metric']})" if best.get("primary_metric") else ""
    table = Table(title=f"{chosen.run.id} by {chosen.key}{metric}")
    for column in ("step", "score", "± stderr", ""):
        table.add_column(column, justify="right")
    for step, r in chosen.results.items():  # 4 significant digits: percentages and per-token rewards alike
        table.add_row(str(step), f"{r['score']:#.4g}", "-" if r.get("stderr") is None else f"{r['stderr']:#.2g}", "best" if step == chosen.best_step else "")
    Console().print(table)
    typer.echo(f"best: {chosen.checkpoint}")


@app.command()
def plot(
    runs: Path = typer.Argument(Path("runs"), help="runs root (the --out of train or grid)"),
    out: Optional[Path] = typer.Option(None, help="figure directory (default: <runs>/figures)"),
) -> None:
    """Training dynamics and the paper's figures (PNG + CSV of the plotted values) from metrics and eval JSON."""
    from semibench.plots import write_plots

    out = out or runs / "figures"
    try:
        drawn = write_plots(runs, out)
    except FileNotFoundError as exc:
        _fail(str(exc))
    for name, run_ids in drawn.items():
        typer.echo(f"{out / name}.png  ({len(run_ids)} runs)")
    typer.echo(f"index: {out / 'figures.md'}")


@app.command()
def tables(
    runs: Path = typer.Argument(Path("runs"), help="runs root"),
    out: Optional[Path] = typer.Option(None, help="table directory (default: <runs>/tables)"),
) -> None:
    """The paper's Tables 1, 2, 3 and 5 from our runs' eval JSON (markdown + CSV)."""
    from semibench.tables import write_tables

    out = out or runs / "tables"
    try:
        written = write_tables(runs, out)
    except FileNotFoundError as exc:
        _fail(str(exc))
    if not written:
        _fail(f"no evaluated runs under {runs}; run `semibench eval` on their final checkpoints (or `semibench grid`)")
    typer.echo((out / "tables.md").read_text())


@app.command()
def leaderboard(
    runs: Path = typer.Argument(Path("runs"), help="runs root"),
    out: Path = typer.Option(Path("leaderboards"), help="where the CSVs and their README go"),
) -> None:
    """Deterministic leaderboard CSVs (one per preset) from the runs' eval JSON; byte-identical when nothing changed."""
    from semibench.leaderboard import write_leaderboards

    try:
        written = write_leaderboards(runs, out)
    except FileNotFoundError as exc:
        _fail(str(exc))
    if not written:
        _fail(f"no run under {runs} has an evaluated final checkpoint; run `semibench eval` on it (or `semibench grid`)")
    for path in written.values():
        typer.echo(str(path))


def main() -> None:
    try:
        app()
    except ConfigError as exc:  # raised from inside a command's library call
        typer.secho(f"error: {exc}", fg="red", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
