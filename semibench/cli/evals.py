"""`semibench eval` (score a checkpoint), `semibench score ...` (existing judge outputs) and `semibench select`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from semibench.benchmarks import BENCHMARKS
from semibench.cli.common import app, fail, given, machine_line, quiet_library_bars, read_experiment, settings_options
from semibench.config import ConfigError
from semibench.evals.settings import EvalSettings, check_settings, eval_dir

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

    from semibench.evals.scoring import alpaca

    try:
        rows = alpaca.load_annotations(annotations)
        result = alpaca.alpaca_winrate(rows)
        lc, note = alpaca.length_controlled_winrate(rows, df_gamed)
    except (OSError, ValueError) as exc:
        fail(str(exc))
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
    baseline: str = typer.Option("gpt-4-0314", help="v0.1: the model in position A of game 1 (anchored at 1000, i.e. 50%)"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
    version: str = typer.Option("v0.1", "--version", help="v0.1 (gpt-4-0314 baseline, BT win rate, 95% CI) or v2.0 (show_result.py)"),
    answers: Optional[Path] = typer.Option(None, "--answers", help="v2.0: model_answer/ directory (baselines included), for style control"),
    style_control: Optional[str] = typer.Option(None, "--style-control", help="v2.0: length,markdown | length | markdown (show_result.py -f)"),
    category: str = typer.Option("hard_prompt", "--category", help="v2.0: hard_prompt | creative_writing (show_result.py -c)"),
) -> None:
    """Arena-Hard-Auto scores. v0.1: Bradley–Terry win rate vs the baseline with a 95% bootstrap CI (100 rounds).
    v2.0: show_result.py's score per model in points with its 5-95% interval, plain or style-controlled."""
    import json

    from semibench.evals.scoring.arena_hard import score_judgments

    if version == "v2.0":
        _score_arena_hard_v2(judgments, answers, style_control, category, as_json)
        return
    if version != "v0.1":
        fail(f"--version {version}: use v0.1 or v2.0")

    try:
        scores = score_judgments(judgments, baseline)
    except (OSError, ValueError) as exc:
        fail(str(exc))
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


def _score_arena_hard_v2(judgments: Path, answers: Path | None, style_control: str | None, category: str, as_json: bool) -> None:
    import json

    from semibench.evals.scoring.arena_hard_v2 import score_v2

    features = tuple(f for f in (style_control or "").replace(" ", ",").split(",") if f)
    try:
        result = score_v2(judgments, answers, category, features)
    except (OSError, ValueError) as exc:
        fail(str(exc))
    if as_json:
        typer.echo(json.dumps(result))
        return
    from rich.console import Console
    from rich.table import Table

    style = f"style-controlled ({result['style_control']})" if features else "no style control"
    table = Table(title=f"Arena-Hard v2.0 {category} vs {result['baseline']}, {style}: {judgments}")
    for column in ("model", "score", "5-95% interval", "battles", "dropped judgments"):
        table.add_column(column, justify="left" if column == "model" else "right")
    for model, m in sorted(result["models"].items(), key=lambda kv: kv[1]["score"], reverse=True):
        table.add_row(model, f"{m['score']:.1f}", f"(-{m['score'] - m['ci_lower']:.1f} / +{m['ci_upper'] - m['score']:.1f})", str(m["battles"]), str(m["dropped"]))
    console = Console()
    console.print(table)
    for note in result["notes"]:
        console.print(note)


@app.command("eval")
@settings_options(EvalSettings)
def eval_(
    ctx: typer.Context,
    checkpoint: str = typer.Argument(..., help="a checkpoint directory (runs/<id>/checkpoints/step_N or any HF dir), or smollm2 / tiny"),
    benchmarks: str = typer.Option("math_heldout,gsm8k,math500,ifeval", help=f"comma-separated: {','.join(BENCHMARKS)}"),
    out_dir: Optional[Path] = typer.Option(None, "--out-dir", help="default: runs/<id>/eval/step_N, or <checkpoint>/eval"),
    origin: Optional[Path] = typer.Option(None, "--origin", help="a run's config.json or a grid seed row's seed.json: the training "
                                          "the held-out sets and wildchat_valid's reward model follow (default: the checkpoint's own run)"),
    config_file: Optional[Path] = typer.Option(None, "--config", help="a YAML file's eval: section (settings and benchmarks; a grid study file "
                                               "works); flags given win over it"),
    settings: EvalSettings = None,
) -> None:
    """Score a checkpoint: MATH-500, GSM8K, IFEval (lm-eval), AMC23, held-out math, AlpacaEval 2.0, Arena-Hard v0.1 and v2.0."""
    quiet_library_bars()
    import logging

    import transformers
    from rich.console import Console

    from semibench.cli.progress import progress_view
    from semibench.evals import evaluate as ev
    from semibench.evals.data import checkpoint_origin, read_origin

    transformers.utils.logging.disable_progress_bar()
    try:
        settings, benchmarks = _with_file(ctx, config_file, settings, benchmarks)
        chosen = [b for b in benchmarks.split(",") if b]
        check_settings(settings)
        resolved = ev.resolve_checkpoint(checkpoint)
        where = out_dir or eval_dir(resolved)
        trained_as = read_origin(origin) if origin is not None else checkpoint_origin(resolved)
        skipped = ev.unavailable(chosen, settings, trained_as)
    except ConfigError as exc:
        fail(str(exc))
    if len(skipped) == len(set(chosen)):
        fail("; ".join(skipped.values()))
    console = Console(stderr=True)
    from semibench.hardware import resolve_dtype

    console.print(machine_line(eval=resolve_dtype(settings.dtype)), markup=False, soft_wrap=True)
    for line in skipped.values():  # plain echo: one unwrapped line each
        typer.secho(f"skipped: {line}", fg="yellow", err=True)
    # The skips found up front were printed above; one found once a benchmark ran (a malformed file) is logged as an error.
    log = logging.getLogger("semibench.evals.evaluate")
    log.setLevel(logging.ERROR)
    echo = logging.StreamHandler(sys.stderr)
    log.addHandler(echo)
    try:
        with progress_view(console, with_info=False) as bar:
            jobs: dict[str, int] = {}

            def on_progress(label: str, done: int, total: int) -> None:
                if label not in jobs:
                    jobs[label] = bar.add_task(label, total=total)
                bar.update(jobs[label], completed=done, total=total)

            results = ev.evaluate(checkpoint, [b for b in chosen if b not in skipped], settings, out_dir, on_progress, trained_as)
    except ConfigError as exc:
        fail(str(exc))
    finally:
        log.removeHandler(echo)
    _print_eval(results, where)


def _with_file(ctx: typer.Context, config_file: Path | None, settings: EvalSettings, benchmarks: str) -> tuple[EvalSettings, str]:
    """The --config file's eval: section under the flags the user gave (`given`), over the flags' defaults."""
    import dataclasses

    if config_file is None:
        return settings, benchmarks
    from_file = read_experiment(config_file, "eval").eval
    if "benchmarks" in from_file and not given(ctx, "benchmarks"):
        benchmarks = ",".join(from_file["benchmarks"])
    return dataclasses.replace(settings, **{k: v for k, v in from_file.items() if k != "benchmarks" and not given(ctx, k)}), benchmarks


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



@app.command("select")
def select(
    run: Path = typer.Argument(..., help="a run directory, runs/<id>"),
    by: str = typer.Option(..., "--by", help="the benchmark whose score picks: numina_valid (math), wildchat_valid (chat), or any evaluated one"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
) -> None:
    """The run's best evaluated checkpoint by one benchmark's score: how the paper picked checkpoints.
    Recorded in runs/<id>/selected.json: tables and leaderboards then show that checkpoint and say why."""
    import json

    from semibench.reports.results import select_checkpoint

    try:
        chosen = select_checkpoint(run, by)
        chosen.record()
    except ConfigError as exc:
        fail(str(exc))
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

