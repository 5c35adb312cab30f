"""`semibench eval` (score a checkpoint), `semibench score ...` (existing judge outputs) and `semibench select`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from semibench.cli.common import app, fail, machine_line, quiet_library_bars
from semibench.config import ConfigError


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
    baseline: str = typer.Option("gpt-4-0314", help="the model in position A of game 1 (anchored at 1000, i.e. 50%)"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
) -> None:
    """Arena-Hard-Auto v0.1 score: Bradley–Terry win rate vs the baseline with a 95% bootstrap CI (100 rounds)."""
    import json

    from semibench.scoring.arena_hard import score_judgments

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
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", envvar="SEMIBENCH_DATA_DIR", help="local benchmark data (default: the shipped tasks/data, then the HF hub)"),
    engine: str = typer.Option("auto", help="auto | hf | vllm"),
    seed: int = typer.Option(0),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="sequences per generate call (default: 32 on HF, 512 on vLLM)"),
    dtype: str = typer.Option("auto", help="generation dtype: auto (bfloat16 where the hardware computes in it, else float32), float32, bfloat16"),
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
    quiet_library_bars()
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
        fail(str(exc))
    if len(skipped) == len(set(chosen)):
        fail("; ".join(skipped.values()))
    console = Console(stderr=True)
    from semibench.hardware import resolve_dtype

    console.print(machine_line(eval=resolve_dtype(settings.dtype)), markup=False, soft_wrap=True)
    for line in skipped.values():  # plain echo: one unwrapped line each
        typer.secho(f"skipped: {line}", fg="yellow", err=True)
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
        fail(str(exc))
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

