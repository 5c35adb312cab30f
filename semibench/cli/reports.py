"""The reports: `plot`, `tables`, `leaderboard`, `compare`, `verdicts`. They read runs/ only."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from semibench.cli.common import app, fail
from semibench.config import ConfigError


def _report(write, runs: Path, out: Path, nothing: str):
    """Run one report writer over a runs tree; a missing tree or nothing to report is one line."""
    try:
        written = write(runs, out)
    except FileNotFoundError as exc:
        fail(str(exc))
    if not written:
        fail(nothing)
    return written


@app.command()
def plot(
    runs: Path = typer.Argument(Path("runs"), help="runs root (the --out of train or grid)"),
    out: Optional[Path] = typer.Option(None, help="figure directory (default: <runs>/figures)"),
) -> None:
    """Training dynamics and the paper's figures (PNG + CSV of the plotted values) from metrics and eval JSON."""
    from semibench.reports.plots import write_plots

    out = out or runs / "figures"
    drawn = _report(write_plots, runs, out, f"no run under {runs} has training metrics to plot; train some first (`semibench train` or `semibench grid`)")
    for name, run_ids in drawn.items():
        typer.echo(f"{out / name}.png  ({len(run_ids)} runs)")
    typer.echo(f"index: {out / 'figures.md'}")


@app.command()
def tables(
    runs: Path = typer.Argument(Path("runs"), help="runs root"),
    out: Optional[Path] = typer.Option(None, help="table directory (default: <runs>/tables)"),
) -> None:
    """The paper's Tables 1, 2, 3 and 5 from our runs' eval JSON, and where the signal was spent (markdown + CSV)."""
    from semibench.reports.signal import write_signal
    from semibench.reports.tables import write_tables

    out = out or runs / "tables"
    _report(write_tables, runs, out, f"no evaluated runs under {runs}; run `semibench eval` on their final checkpoints (or `semibench grid`)")
    typer.echo((out / "tables.md").read_text())
    signal = write_signal(runs, out)
    if signal is not None:
        typer.echo(signal.read_text())


@app.command()
def leaderboard(
    runs: Path = typer.Argument(Path("runs"), help="runs root"),
    out: Path = typer.Option(Path("leaderboards"), help="where the CSVs and their README go"),
) -> None:
    """Deterministic leaderboard CSVs (one per preset) from the runs' eval JSON; byte-identical when nothing changed."""
    from semibench.reports.leaderboard import write_leaderboards

    written = _report(write_leaderboards, runs, out, f"no run under {runs} has an evaluated final checkpoint; run `semibench eval` on it (or `semibench grid`)")
    for path in written.values():
        typer.echo(str(path))


@app.command()
def compare(
    a: Path = typer.Argument(..., help="an eval dir, a run dir (its selected checkpoint, else its newest evaluated one) or a checkpoint dir"),
    b: Path = typer.Argument(..., help="the same, for the other side"),
    benchmarks: Optional[str] = typer.Option(None, help="comma-separated; default: every benchmark both sides scored"),
    seed: int = typer.Option(0, help="kept for scripts: every test used is exact or analytic, so results do not depend on it"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON list"),
) -> None:
    """A vs B, paired item by item: delta in points, its 95% CI, p-value, minimum detectable effect, verdict."""
    from semibench.reports.compare import compare_evals, format_p, json_without_nan

    try:
        rows = compare_evals(a, b, [x for x in benchmarks.split(",") if x] if benchmarks else None, seed)
    except ConfigError as exc:
        fail(str(exc))
    if as_json:
        typer.echo(json_without_nan(rows))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"A = {rows[0]['a']}\nB = {rows[0]['b']}", caption=(
        "delta = A - B in points, items' samples averaged first. One test per benchmark decides, its p and 95% CI from "
        "the same inversion: exact McNemar with its Clopper-Pearson interval (one binary sample per item), else the "
        "paired t-test over items. MDE: minimum detectable effect at 80% power, alpha 0.05. Not adjusted for "
        "multiple benchmarks (`semibench verdicts` adjusts a grid's family). \"(1 training seed)\": seed-to-seed "
        "variance was not measured, so the verdict may not survive another training seed."))
    for column in ("benchmark", "items", "x N", "A", "B", "delta", "95% CI", "p", "McNemar p", "MDE", "verdict"):
        table.add_column(column, justify="left" if column in ("benchmark", "verdict") else "right")
    for r in rows:
        mcnemar_p = r.get("mcnemar_p_value")
        table.add_row(r["benchmark"], str(r["n_items"]), str(r["samples_per_item"]), f"{r['score_a']:.2f}", f"{r['score_b']:.2f}", f"{r['delta']:+.2f}",
                      f"[{r['ci_lower']:+.2f}, {r['ci_upper']:+.2f}]", format_p(r["p_value"]), "-" if mcnemar_p is None else format_p(mcnemar_p),
                      f"{r['mde']:.2f}", r["verdict"])
    Console(width=170).print(table)


@app.command()
def verdicts(
    runs: Path = typer.Argument(Path("runs"), help="a runs tree (the --out of grid or train)"),
    out: Optional[Path] = typer.Option(None, help="default: <runs>/tables"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON list instead of writing files"),
    against: Optional[Path] = typer.Option(None, "--against", help="a second runs tree of the same grid (another task.data_seed or "
                                           "machine): print how many verdicts replicate, and write <out>/replication.md + .csv"),
    target_mde: float = typer.Option(4.0, "--target-mde", min=0.01, help="points: the planning column gives the training seeds an arm "
                                     "each comparison needs for its MDE to reach this (run a small grid as the pilot)"),
) -> None:
    """Every comparison the grid was built for, one test each (paired over the training seeds two arms share, Welch over seeds otherwise, paired over items with one seed a side), Holm-adjusted per benchmark: runs/tables/verdicts.md + .csv."""
    from semibench.reports import verdicts as v
    from semibench.reports.compare import json_without_nan

    if as_json:
        try:
            typer.echo(json_without_nan(v.verdict_rows(runs, target_mde=target_mde)))
        except FileNotFoundError as exc:
            fail(str(exc))
        return
    write = lambda root, to: v.write_verdicts(root, to, target_mde)  # noqa: E731
    written = _report(write, runs, out or runs / "tables", f"no pair of evaluated runs with per-sample scores under {runs}")
    typer.echo(written["verdicts"].read_text())
    if "figure" in written:
        typer.echo(f"figure: {written['figure']} (the same rows: estimate, 95% CI, ± MDE)")
    if against is not None:
        second = v.verdict_rows(against)
        if not second:
            fail(f"no pair of evaluated runs with per-sample scores under {against}")
        from semibench.runs import atomic_write_text

        result = v.replication(v.verdict_rows(runs), second)
        text = v.replication_markdown(result, str(runs), str(against))
        atomic_write_text((out or runs / "tables") / "replication.csv", v.replication_csv(result))
        atomic_write_text((out or runs / "tables") / "replication.md", text)
        typer.echo(text)
