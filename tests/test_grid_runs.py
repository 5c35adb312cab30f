"""The grid for real on the `tiny` preset: a finished grid is not redone; a killed grid resumes where it stopped."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from semibench.evals import evaluate
from semibench.grid import GridSpec, aggregate, eval_settings, expand, run_local, with_defaults
from semibench.runs import run_id

SPEC = GridSpec(tasks=("math",), preset="tiny")


def _grid_command(out: Path, leaderboards: Path) -> list[str]:
    return [sys.executable, "-m", "semibench", "grid", "--tasks", "math", "--preset", "tiny", "--out", str(out), "--leaderboard-out", str(leaderboards)]


@pytest.fixture(scope="module")
def finished(tiny_grid):
    return tiny_grid  # conftest's: _grid_command's grid, shared with tests/test_api.py


def test_grid_trains_evaluates_and_aggregates(finished):
    runs = finished / "runs"
    configs = expand(SPEC)
    assert len(configs) == 4
    for cfg in configs:
        run = runs / run_id(cfg)
        assert (run / "DONE").exists()
        result = json.loads((run / "eval" / f"step_{cfg.train.steps:06d}" / "math_heldout.json").read_text())
        assert result["n"] == 16 and 0.0 <= result["score"] <= 100.0
    seed = json.loads((runs / "seed-tiny" / "eval" / "math_heldout.json").read_text())
    assert seed["n"] == 16
    rows = (finished / "lb" / "tiny.csv").read_text().splitlines()
    assert len(rows) == 1 + 5  # header, seed row, four runs
    assert (runs / "figures" / "dynamics_math.png").exists() and (runs / "tables" / "table1.md").exists()


def test_second_grid_call_does_no_training_and_no_eval(finished, monkeypatch, tmp_path):
    import semibench.training.train

    def forbidden(*args, **kwargs):
        raise AssertionError("a finished grid must not train or evaluate again")

    monkeypatch.setattr(semibench.training.train, "train", forbidden)
    monkeypatch.setattr(evaluate, "runner", forbidden)
    before = (finished / "lb" / "tiny.csv").read_bytes()
    settings = eval_settings(SPEC, {})
    run_local(SPEC, finished / "runs", with_defaults(SPEC, None), settings)
    aggregate(finished / "runs", tmp_path / "lb")
    assert (tmp_path / "lb" / "tiny.csv").read_bytes() == before  # byte-identical leaderboard


def test_killed_grid_resumes_and_skips_what_is_done(finished, tmp_path):
    out, lb = tmp_path / "runs", tmp_path / "lb"
    configs = expand(SPEC)
    second = out / run_id(configs[1])
    proc = subprocess.Popen(_grid_command(out, lb), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 400
    while time.time() < deadline:  # kill mid-run: the second run has logged a step but not finished
        if (second / "metrics.jsonl").exists() and len((second / "metrics.jsonl").read_text().splitlines()) >= 1:
            break
        assert proc.poll() is None, "the grid finished before it could be killed"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    first = out / run_id(configs[0])
    assert (first / "DONE").exists() and not (second / "DONE").exists()
    first_eval = first / "eval" / f"step_{configs[0].train.steps:06d}" / "math_heldout.json"
    stamps = {p: p.stat().st_mtime_ns for p in (first / "DONE", first_eval)}
    # Nothing of the killed run reads as done: no leaderboard row, no final checkpoint.
    assert not any((second / "checkpoints").glob("step_*/DONE"))

    subprocess.run(_grid_command(out, lb), check=True, capture_output=True, text=True)
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items())  # finished run and its eval untouched
    for cfg in configs:
        rows = [json.loads(line) for line in (out / run_id(cfg) / "metrics.jsonl").read_text().splitlines()]
        assert [r["step"] for r in rows] == list(range(cfg.train.steps))  # resumed, not duplicated
        assert (out / run_id(cfg) / "DONE").exists()
    # Same runs, same seeds: the re-run grid's leaderboard scores equal the uninterrupted grid's.
    assert _scores(lb / "tiny.csv") == _scores(finished / "lb" / "tiny.csv")


def _scores(path: Path) -> list[tuple[str, str]]:
    header, *rows = [line.split(",") for line in path.read_text().splitlines()]
    col = header.index("math_heldout")
    return [(r[0], r[col]) for r in rows]


def test_a_preset_that_selects_reports_the_selected_checkpoint(tmp_path, monkeypatch):
    """The paper's protocol (`grid --preset paper`): every exported checkpoint is scored on a validation
    benchmark, the best is recorded in selected.json and scored on everything, and the tables and the
    leaderboard show that checkpoint and say which it is. Here on tiny, selecting by held-out math."""
    import csv
    import dataclasses

    from semibench import grid
    from semibench.reports.leaderboard import write_leaderboards
    from semibench.reports.tables import write_tables
    from semibench.runs import RunDir

    selecting = dataclasses.replace(grid.GRID_DEFAULTS["tiny"], select_by={"math": "math_heldout"}, overrides={"train.checkpoint_every": 1})
    monkeypatch.setitem(grid.GRID_DEFAULTS, "tiny", selecting)
    spec = GridSpec(tasks=("math",), objectives=("dpo",), sync_every=(1,), preset="tiny")
    [cfg] = run_local(spec, tmp_path / "runs", ("math_heldout",), eval_settings(spec, {}))
    run = RunDir(tmp_path / "runs", cfg)
    scores = {int(p.name.removeprefix("step_")): json.loads((p / "math_heldout.json").read_text())["score"] for p in run.evals.glob("step_*")}
    assert sorted(scores) == [1, 2, 3]
    best = max(scores, key=lambda step: (scores[step], -step))  # ties go to the earlier checkpoint
    assert json.loads(run.selection_path.read_text()) == {"step": best, "by": "math_heldout", "score": scores[best]}

    write_tables(tmp_path / "runs", tmp_path / "tables")
    assert f"[step {best} by math_heldout]" in (tmp_path / "tables" / "table1.md").read_text()
    write_leaderboards(tmp_path / "runs", tmp_path / "lb")
    [row] = [r for r in csv.DictReader((tmp_path / "lb" / "tiny.csv").open()) if r["run_id"] == run.id]
    assert (row["checkpoint_step"], row["selected_by"], row["math_heldout"]) == (str(best), "math_heldout", f"{scores[best]:.2f}")


def test_training_seeds_and_the_seed_row_score_the_same_held_out_items(tmp_path):
    """Under --seeds 0,1 every row's held-out math is the same items, so rows can be paired and pooled:
    the pool is task.data_seed's, and train.seed only orders it."""
    from semibench import grid

    spec = GridSpec(tasks=("math",), objectives=("dpo",), sync_every=(1,), preset="tiny", seeds=(0, 1))
    clock = grid.grid_clock(expand(spec), tmp_path / "runs", ("math_heldout",))
    configs = run_local(spec, tmp_path / "runs", ("math_heldout",), eval_settings(spec, {}), clock=clock)
    assert [c.train.seed for c in configs] == [0, 1]
    # The ETA's clock saw both seeds' steps as one arm and every evaluation (the seed row's too); a clock
    # built afterwards from the files alone knows the same, and nothing is left.
    for seen in (clock, grid.grid_clock(configs, tmp_path / "runs", ("math_heldout",))):
        assert seen.seconds_left(now=0.0) == 0.0 and all(r.evaluated for r in seen.runs)
        assert {arm: len(s) for arm, s in seen.step_s.items()} == {grid.arm_of(configs[0]): 2 * configs[0].train.steps}
        assert {b: len(s) for b, s in seen.eval_s.items()} == {"math_heldout": 3}
    questions = lambda path: [json.loads(line)["question"] for line in path.read_text().splitlines()]  # noqa: E731
    seed_row = questions(tmp_path / "runs" / "seed-tiny" / "eval" / "math_heldout.samples.jsonl")
    for cfg in configs:
        run = tmp_path / "runs" / run_id(cfg)
        assert questions(run / "eval" / f"step_{cfg.train.steps:06d}" / "math_heldout.samples.jsonl") == seed_row
    assert len(seed_row) == len(set(seed_row)) == 16  # the tiny grid's limit


def test_validation_checkpoints_leave_a_semi_online_run_unchanged(tmp_path):
    """The grid's validation curves export a checkpoint every eval_every steps: a semi-online run's
    rollouts, rewards and losses must be those of the same run without them."""
    from semibench import config
    from semibench.runs import RunDir
    from semibench.training.train import train

    plain = config.resolve("tiny", {"train.sync_every": "2", "train.steps": 4})
    validated = config.resolve("tiny", {"train.sync_every": "2", "train.steps": 4, "train.checkpoint_every": 1})
    rows = [RunDir.at(train(cfg, tmp_path / name)).read_metrics() for name, cfg in (("plain", plain), ("validated", validated))]
    untimed = [[{k: v for k, v in r.items() if not k.startswith("time/") and k != "tokens_per_s"} for r in run] for run in rows]
    assert untimed[0] == untimed[1] and len(untimed[0]) == 4
    assert len(RunDir(tmp_path / "validated", validated).done_checkpoints()) == 4


def test_a_disk_too_small_for_the_grid_stops_it_before_the_seed_model_with_one_line(finished, tmp_path, monkeypatch):
    """The grid sizes what its unfinished runs will write before it evaluates or trains anything, instead of
    failing at the run that fills the disk (the default grid keeps 8.6 GB of checkpoints)."""
    import shutil

    from transformers import AutoModelForCausalLM

    from semibench import grid
    from semibench.config import ConfigError
    from semibench.models import resolve_model
    from semibench.runs import export_steps
    from semibench.training import checkpoint

    configs = expand(SPEC)
    weights = 4 * sum(p.numel() for p in AutoModelForCausalLM.from_pretrained(resolve_model("tiny")).parameters())  # fp32
    exports = sum(len(export_steps(cfg)) * weights for cfg in configs)
    needed = grid.disk_needed(SPEC, tmp_path / "runs")
    assert exports <= needed <= exports + 4 * weights  # + one run's resumable states at most
    assert grid.disk_needed(SPEC, finished / "runs") == 0  # a finished grid writes nothing more

    real = shutil.disk_usage
    monkeypatch.setattr(checkpoint.shutil, "disk_usage", lambda path: real(path)._replace(free=needed - 1))
    with pytest.raises(ConfigError, match=r"free on the disk of .*, and the grid's 4 unfinished runs write up to") as failure:
        run_local(SPEC, tmp_path / "runs", with_defaults(SPEC, None), eval_settings(SPEC, {}))
    assert "--out" in str(failure.value) and "\n" not in str(failure.value)
    assert not (tmp_path / "runs").exists()  # no seed-model evaluation, no run started


def test_intermediate_checkpoints_only_the_validation_seeds_score_go_once_their_run_is_evaluated(tmp_path, monkeypatch):
    """Every seed of an arm exports the validation cadence (the runs differ only in train.seed, so they pool),
    but only the validation seeds' midpoints are scored: the others' are dropped after the run's evaluation
    (a 5-seed smol grid would keep 22 GB of checkpoints instead of 13), and the disk check counts them once."""
    from dataclasses import replace

    from semibench import grid
    from semibench.models import checkpoint_params, resolve_model
    from semibench.runs import RunDir
    from semibench.training.checkpoint import state_bytes, states_held
    from semibench.training.train import keeps_window_model

    monkeypatch.setitem(grid.GRID_DEFAULTS, "tiny", replace(grid.GRID_DEFAULTS["tiny"], eval_every=2, validation_seeds=(0,)))
    spec = GridSpec(tasks=("math",), objectives=("grpo",), preset="tiny", seeds=(0, 1, 2), overrides={"train.steps": 4})
    configs = expand(spec)
    assert [grid.unscored_steps(spec, cfg) for cfg in configs] == [[], [2], [2]]
    own = replace(spec, overrides={**spec.overrides, "train.checkpoint_every": 2})  # the user's cadence is kept
    assert [grid.unscored_steps(own, cfg) for cfg in expand(own)] == [[], [], []]

    weights = 4 * checkpoint_params(resolve_model("tiny"))  # fp32
    states = states_held(configs[0].train.resume_every, 4) * state_bytes(weights, keeps_window_model(configs[0]))
    # kept: seed 0's two exports and one final each for seeds 1-2; at a time: one run's states and its dropped midpoint
    assert grid.disk_needed(spec, tmp_path / "runs") == 4 * weights + states + weights

    run_local(spec, tmp_path / "runs", with_defaults(spec, None), eval_settings(spec, {}))
    runs = [RunDir(tmp_path / "runs", cfg) for cfg in configs]
    assert [[p.name for p in run.done_checkpoints()] for run in runs] == [["step_000002", "step_000004"], ["step_000004"], ["step_000004"]]
    assert not any(run.checkpoint(2).exists() for run in runs[1:])
    assert (runs[0].eval_dir(2) / "math_heldout.json").is_file()  # the validation seed's midpoint was scored first
    assert all((run.eval_dir(4) / "math_heldout.json").is_file() for run in runs)

    # A run finished with the midpoints asked for (the same run id) keeps them when a plain grid comes back.
    own, plain = replace(own, seeds=(1,)), replace(spec, seeds=(1,))
    run_local(own, tmp_path / "own", with_defaults(own, None), eval_settings(own, {}))
    run_local(plain, tmp_path / "own", with_defaults(plain, None), eval_settings(plain, {}))
    assert [p.name for p in RunDir(tmp_path / "own", expand(plain)[0]).done_checkpoints()] == ["step_000002", "step_000004"]
