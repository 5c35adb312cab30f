"""Grid expansion (a table test), --dry-run, and the job commands of the Slurm launcher."""

import shlex

import pytest
from typer.testing import CliRunner

from semibench import config
from semibench.cli import app
from semibench.grid import GridSpec, expand, parse_sync_list
from semibench.slurm import SlurmSettings, job_command
from semibench.runs import run_id

runner = CliRunner()


def _rows(spec):
    return [(c.task.name, c.loss.objective, c.train.sync_every, c.train.seed) for c in expand(spec)]


@pytest.mark.parametrize("spec,expected", [
    # The paper's default: DPO offline, semi-online at the task's values, online; GRPO online only.
    (GridSpec(tasks=("mixed",), preset="tiny"), [("mixed", "dpo", None, 0), ("mixed", "dpo", 2, 0), ("mixed", "dpo", 1, 0), ("mixed", "grpo", 1, 0)]),
    (GridSpec(tasks=("math", "if"), objectives=("dpo",), preset="tiny", seeds=(0, 1)), [
        ("math", "dpo", None, 0), ("math", "dpo", None, 1), ("math", "dpo", 2, 0), ("math", "dpo", 2, 1), ("math", "dpo", 1, 0), ("math", "dpo", 1, 1),
        ("if", "dpo", None, 0), ("if", "dpo", None, 1), ("if", "dpo", 2, 0), ("if", "dpo", 2, 1), ("if", "dpo", 1, 0), ("if", "dpo", 1, 1)]),
    # Asked explicitly, semi-online GRPO runs too.
    (GridSpec(tasks=("math",), sync_every=(1, 3), preset="tiny"), [("math", "dpo", 1, 0), ("math", "dpo", 3, 0), ("math", "grpo", 1, 0), ("math", "grpo", 3, 0)]),
])
def test_expansion_table(spec, expected):
    assert _rows(spec) == expected


def test_expanded_configs_carry_table4_and_overrides():
    configs = expand(GridSpec(tasks=("math", "if"), objectives=("dpo",), sync_every=(1,), preset="tiny", overrides={"optim.lr": "3e-4"}))
    math_cfg, if_cfg = configs
    assert (math_cfg.loss.dpo_beta, if_cfg.loss.dpo_beta) == (0.1, 0.01)  # Table 4 per task
    assert math_cfg.optim.lr == if_cfg.optim.lr == 3e-4
    assert len({run_id(c) for c in configs}) == 2


def test_parse_sync_list():
    assert parse_sync_list("1,10,inf") == (1, 10, None)
    assert parse_sync_list(None) is None
    with pytest.raises(config.ConfigError):
        parse_sync_list("1,0")


def test_dry_run_prints_runs_and_estimate_and_runs_nothing(tmp_path):
    result = runner.invoke(app, ["grid", "--tasks", "math", "--preset", "tiny", "--dry-run", "--out", str(tmp_path / "runs")])
    assert result.exit_code == 0, result.output
    for cfg in expand(GridSpec(tasks=("math",), preset="tiny")):
        assert run_id(cfg)[:30] in result.output
    assert "4 runs" in result.output and "estimated training time left" in result.output
    assert not (tmp_path / "runs").exists()
    # The machine line names the dtypes the runs will use, an --eval-set dtype included (it once showed the preset's).
    pinned = runner.invoke(app, ["grid", "--tasks", "math", "--preset", "tiny", "--dry-run", "--out", str(tmp_path / "runs"),
                                 "--set", "model.generator_dtype=float32", "--eval-set", "dtype=float32"])
    assert "dtypes: generator float32" in pinned.output and "eval float32" in pinned.output, pinned.output


@pytest.mark.parametrize("args,message", [
    (["--tasks", "maths"], "unknown task 'maths'"),
    (["--objectives", "ppo"], "unknown objective 'ppo'"),
    (["--sync-every", "0"], "sync_every must be >= 1"),
    (["--set", "optim.lrr=1"], "unknown config key 'optim.lrr'"),
    (["--preset", "nope"], "unknown preset 'nope'"),
    (["--seeds", "0,a"], "--seeds takes comma-separated integers"),
])
def test_bad_grid_input_one_line(tmp_path, args, message):
    result = runner.invoke(app, ["grid", "--dry-run", "--out", str(tmp_path), *args])
    assert result.exit_code == 2 and message in result.output
    assert len([l for l in result.output.splitlines() if l.strip()]) == 1



def test_slurm_job_command_reproduces_the_run_id(tmp_path):
    spec = GridSpec(tasks=("math",), objectives=("dpo",), sync_every=(4,), preset="tiny", overrides={"optim.lr": "3e-4"})
    [cfg] = expand(spec)
    from semibench.evals.settings import EvalSettings

    command = job_command(spec, cfg, tmp_path, ["math_heldout"], EvalSettings(), SlurmSettings(gpus_per_node=4, nodes=2))
    assert "torchrun --nproc_per_node=4 --nnodes=${SLURM_NNODES:-1}" in command
    train_part = command.split("&&")[0].split("; ")[-1]
    args = shlex.split(train_part.split("-m semibench train", 1)[1])
    # Parse the train flags back and resolve them as `semibench train` does: same config, same run id.
    flags = dict(zip(args[0::2], args[1::2]))
    sets = [args[i + 1] for i, a in enumerate(args) if a == "--set"]
    overrides = config.parse_set_args(sets) | {"task.name": flags["--task"], "loss.objective": flags["--objective"],
                                               "train.sync_every": flags["--sync-every"], "train.seed": flags["--seed"]}
    assert run_id(config.resolve(flags["--preset"], overrides)) == run_id(cfg)
    assert f"eval {tmp_path}/{run_id(cfg)}/checkpoints/step_{cfg.train.steps:06d}" in command


@pytest.mark.parametrize("benchmarks,expected", [
    (["math_heldout", "ifeval"], [("step_000001", ["math_heldout"]), ("step_000002", ["math_heldout", "ifeval"])]),
    (["ifeval"], [("step_000002", ["ifeval"])]),  # no validation benchmark: intermediate checkpoints are not evaluated
])
def test_intermediate_checkpoints_get_the_validation_benchmarks_only(tmp_path, monkeypatch, benchmarks, expected):
    # Which checkpoint gets which benchmarks (the evaluation itself runs for real in test_grid_runs.py).
    from semibench import grid
    from semibench.evals import evaluate
    from semibench.runs import mark_done

    cfg = config.resolve("tiny", {"train.steps": 2})
    for step in (1, 2):
        mark_done(tmp_path / run_id(cfg) / "checkpoints" / f"step_{step:06d}")
    (tmp_path / run_id(cfg) / "checkpoints" / "step_000003").mkdir()  # unfinished: never evaluated
    calls = []
    monkeypatch.setattr(evaluate, "evaluate", lambda checkpoint, chosen, settings, progress=None: calls.append((checkpoint.name, list(chosen))) or {})
    grid.evaluate_run(cfg, tmp_path, benchmarks, evaluate.EvalSettings())
    assert calls == expected


def test_the_default_grid_trains_three_seeds_per_arm_and_draws_curves_from_seed_0(tmp_path, monkeypatch):
    """`semibench grid --tasks mixed`: DPO offline / semi-online / online and GRPO, 3 training seeds each, all
    exporting the same checkpoints (one arm each); only seed 0's midpoints are scored for the cost curves."""
    from semibench import grid
    from semibench.evals import evaluate
    from semibench.runs import mark_done

    configs = expand(GridSpec(tasks=("mixed",), preset="smol"))
    assert len(configs) == 12 and sorted({c.train.seed for c in configs}) == [0, 1, 2]
    assert {(c.loss.objective, c.train.sync_every) for c in configs} == {("dpo", None), ("dpo", 4), ("dpo", 1), ("grpo", 1)}
    assert {(c.train.steps, c.train.checkpoint_every) for c in configs} == {(20, 10)}
    calls = []
    monkeypatch.setattr(evaluate, "evaluate", lambda checkpoint, chosen, settings, progress=None: calls.append((checkpoint.name, list(chosen))) or {})
    for cfg in [c for c in configs if c.loss.objective == "grpo"][:2]:  # seeds 0 and 1
        for step in (10, 20):
            mark_done(tmp_path / run_id(cfg) / "checkpoints" / f"step_{step:06d}")
        grid.evaluate_run(cfg, tmp_path, ["math_heldout", "ifeval"], evaluate.EvalSettings())
    assert calls == [("step_000010", ["math_heldout"]), ("step_000020", ["math_heldout", "ifeval"]), ("step_000020", ["math_heldout", "ifeval"])]
