"""The Python API (`import semibench`, docs/api.md) against the CLI's own output on a real tiny grid
(conftest's `tiny_grid`): the leaderboard CSV, the figures' CSVs, `compare --json` and `verdicts --json`."""

import csv
import hashlib
import inspect
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import semibench
from semibench.cli import app

runner = CliRunner()
ROOT = Path(__file__).resolve().parent.parent


def _leaderboard(tiny_grid: Path) -> dict[str, dict]:
    return {row["run_id"]: row for row in csv.DictReader((tiny_grid / "lb" / "tiny.csv").open())}


def _same(got, want) -> bool:
    """Equal, with NaN / None (a JSON null) as one missing value and floats to 1e-9."""
    missing = lambda v: v is None or (isinstance(v, float) and math.isnan(v))  # noqa: E731
    if isinstance(got, (tuple, list)) and isinstance(want, list):  # JSON has lists only
        return len(got) == len(want) and all(_same(g, w) for g, w in zip(got, want))
    if missing(got) or missing(want):
        return missing(got) and missing(want)
    if isinstance(want, float) or isinstance(got, float):
        return math.isclose(float(got), float(want), rel_tol=1e-9, abs_tol=1e-12)
    return got == want


def test_read_runs_is_the_leaderboards_runs(tiny_grid):
    runs = semibench.read_runs(tiny_grid / "runs")
    board = _leaderboard(tiny_grid)
    assert sorted(runs.run_id) == sorted(k for k in board if not k.startswith("seed-"))
    for run in runs.itertuples():
        row = board[run.run_id]
        assert (run.task, run.objective, run.regime, str(run.seed), run.preset) == (row["task"], row["objective"], row["regime"], row["seed"], row["preset"])
        assert ("inf" if math.isinf(run.s) else str(int(run.s))) == row["sync_every"]
        summary = json.loads((Path(run.path) / "summary.json").read_text())
        assert run.status == "done" and run.commit == summary["git_commit"] and run.steps_done == run.steps == int(row["steps"])


def test_read_metrics_is_what_the_figures_plot(tiny_grid):
    metrics = semibench.read_metrics(tiny_grid / "runs").set_index(["run_id", "metric", "step"])
    plotted = [r for r in csv.DictReader((tiny_grid / "runs" / "figures" / "dynamics_math.csv").open()) if r["panel"] != "valid/reward"]
    assert len(plotted) > 100
    for r in plotted:
        assert metrics.loc[(r["run_id"], r["panel"], int(r["step"])), "value"] == pytest.approx(float(r["value"]), rel=1e-12)
    # wall_s at the last step: the seconds `semibench train` summarised for the run
    for run in semibench.read_runs(tiny_grid / "runs").itertuples():
        last = metrics.loc[(run.run_id, "lr")].iloc[-1]
        assert last.wall_s == pytest.approx(json.loads((Path(run.path) / "summary.json").read_text())["seconds"], rel=1e-9)


def test_read_evals_is_the_leaderboards_scores_and_the_curves_points(tiny_grid):
    evals = semibench.read_evals(tiny_grid / "runs")
    board = _leaderboard(tiny_grid)
    selected = evals[evals.selected]
    assert sorted(selected.run_id) == sorted(k for k in board if not k.startswith("seed-"))
    for row in selected.itertuples():
        lb = board[row.run_id]
        assert (f"{row.score:.2f}", f"{row.se_items:.2f}", str(row.step), row.selected_by) == (
            lb["math_heldout"], lb["math_heldout_se_items"], lb["checkpoint_step"], lb["selected_by"] or "final")
    seed_rows = evals[evals.seed_row]
    assert set(seed_rows.step) == {0} and {f"{s:.2f}" for s in seed_rows.score} == {board["seed-tiny"]["math_heldout"]}
    # the training curves' held-out math points (semibench plot): the seed model at step 0, then each checkpoint
    curve = {(r["run_id"], int(r["step"])): float(r["value"]) for r in csv.DictReader((tiny_grid / "runs" / "figures" / "dynamics_math.csv").open())
             if r["panel"] == "valid/reward"}
    assert {(r.run_id, r.step): r.score for r in evals.itertuples()} == pytest.approx(curve)


def test_compare_is_semibench_compare(tiny_grid):
    a, b = (str(p) for p in sorted((tiny_grid / "runs").glob("math-*-s1-*")))  # online DPO, online GRPO
    cli = runner.invoke(app, ["compare", a, b, "--json"])
    assert cli.exit_code == 0, cli.output
    want, got = json.loads(cli.stdout), semibench.compare(a, b).to_dict("records")
    assert len(got) == len(want) == 1 and list(got[0]) == list(want[0])
    assert all(_same(got[0][k], want[0][k]) for k in want[0]), (got, want)


def test_verdicts_are_semibench_verdicts(tiny_grid):
    cli = runner.invoke(app, ["verdicts", str(tiny_grid / "runs"), "--json"])
    assert cli.exit_code == 0, cli.output
    want, got = json.loads(cli.stdout), semibench.verdicts(tiny_grid / "runs").to_dict("records")
    assert len(got) == len(want) == 8  # 4 arms against the seed model, 3 DPO pairs, online GRPO against online DPO
    for g, w in zip(got, want):
        assert set(g) == set(w) and all(_same(g[k], w[k]) for k in w), (g, w)


def test_the_api_reads_and_never_writes(tiny_grid):
    def snapshot() -> dict[str, str]:
        return {str(p.relative_to(tiny_grid)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(tiny_grid.rglob("*")) if p.is_file()}

    before = snapshot()
    runs = tiny_grid / "runs"
    a, b = sorted(runs.glob("math-*-s1-*"))
    semibench.read_runs(runs), semibench.read_metrics(runs), semibench.read_evals(runs), semibench.compare(a, b), semibench.verdicts(runs)
    assert snapshot() == before


def test_every_function_takes_a_path_and_names_a_missing_one(tmp_path):
    for name in ("read_runs", "read_metrics", "read_evals", "verdicts"):
        [first, *_] = inspect.signature(getattr(semibench, name)).parameters.values()
        assert first.default is inspect.Parameter.empty  # never the current directory implicitly
        with pytest.raises(FileNotFoundError, match=f"no runs directory {re.escape(str(tmp_path / 'nope'))}"):
            getattr(semibench, name)(tmp_path / "nope")
    assert sorted(semibench.__all__) == sorted(["read_runs", "read_metrics", "read_evals", "compare", "verdicts"])


def test_import_semibench_loads_no_pandas():
    code = "import sys, semibench; print('pandas' in sys.modules); semibench.read_runs; print('pandas' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split() == ["False", "True"]


def test_the_docs_notebook_example_runs(tiny_grid, tmp_path, monkeypatch, capsys):
    """docs/api.md's example, verbatim, over the tiny grid: it draws the figure and prints each arm's held-out math."""
    import matplotlib

    matplotlib.use("Agg")
    text = (ROOT / "docs" / "api.md").read_text()
    block = text.split("<!-- api:example -->\n```python\n", 1)[1].split("```", 1)[0]
    assert len([line for line in block.splitlines() if line.strip() and not line.startswith(("import", "print"))]) == 10
    (tmp_path / "runs").symlink_to(tiny_grid / "runs")
    monkeypatch.chdir(tmp_path)
    exec(compile(block, "docs/api.md", "exec"), {})
    assert (tmp_path / "cost.png").stat().st_size > 10_000
    printed = capsys.readouterr().out
    for arm in ("offline dpo", "semi-online dpo", "online dpo", "online grpo"):
        assert re.search(rf"^{arm} +\d+\.\d+ +NaN +1$", printed, re.M), printed
