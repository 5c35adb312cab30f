"""Experiment files (`--config`): the same experiment from a file or from flags is the same run; every run's
config.yaml re-runs it; a bad file is one line naming the file, its line and the key, exit 2, nothing written."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from semibench import config, configfile
from semibench.cli import app
from semibench.config import ConfigError
from semibench.evals.settings import EvalSettings
from semibench.grid import GridSpec, expand
from semibench.runs import RunDir, run_id
from semibench.study import plan
from tests.report_fixtures import make_run

runner = CliRunner()


def _load(tmp_path: Path, text: str, command: str = "train") -> configfile.ExperimentFile:
    path = tmp_path / "exp.yaml"
    path.write_text(text)
    return configfile.load(path, command, EvalSettings)


def _id_from_file(experiment: configfile.ExperimentFile, flags: dict | None = None) -> str:
    return run_id(config.resolve(experiment.preset or "smol", experiment.run | (flags or {})))


def test_dotted_and_nested_keys_are_the_same_run_as_the_flags(tmp_path):
    flags = run_id(config.resolve("tiny", config.parse_set_args(["task.name=math", "loss.objective=grpo", "train.sync_every=inf",
                                                                  "optim.lr=1e-4", "task.reasoning_gym=single_digit,easy_arithmetic"])))
    dotted = _load(tmp_path, "preset: tiny\ntask.name: math\nloss.objective: grpo\ntrain.sync_every: inf\noptim.lr: 1e-4\n"
                             "task.reasoning_gym: [single_digit, easy_arithmetic]\n")
    nested = _load(tmp_path, "preset: tiny\ntask: {name: math, reasoning_gym: 'single_digit,easy_arithmetic'}\nloss:\n  objective: grpo\n"
                             "train:\n  sync_every: .inf\noptim:\n  lr: 0.0001\n")
    assert _id_from_file(dotted) == _id_from_file(nested) == flags


def test_precedence_preset_then_table4_then_file_then_set(tmp_path):
    """Table 4's math DPO row sets beta 0.1 and eps 1e-4 over the tiny preset's default; the file beats the row; --set beats the file."""
    experiment = _load(tmp_path, "preset: tiny\ntask.name: math\nloss.dpo_beta: 0.5\n")
    from_file = config.resolve(experiment.preset, experiment.run)
    assert from_file.loss.dpo_beta == 0.5 and from_file.train.ref_sync is True  # the row's other values stay
    assert config.resolve(experiment.preset, experiment.run | {"loss.dpo_beta": "0.2"}).loss.dpo_beta == 0.2


@pytest.mark.parametrize("preset,task,objective", [("tiny", "math", "dpo"), ("smol", "math", "dpo"), ("smol", "mixed", "grpo"), ("paper", "if", "dpo")])
def test_presets_show_yaml_is_a_file_that_runs_the_same_run(tmp_path, preset, task, objective):
    result = runner.invoke(app, ["presets", "show", preset, "--task", task, "--objective", objective, "--format", "yaml"])
    assert result.exit_code == 0, result.output
    (tmp_path / "exp.yaml").write_text(result.stdout)
    experiment = configfile.load(tmp_path / "exp.yaml", "train", EvalSettings)
    assert set(experiment.run) | {"preset"} == set(config.all_keys())  # every key
    assert _id_from_file(experiment) == run_id(config.resolve(preset, {"task.name": task, "loss.objective": objective}))
    assert "auto  # here:" in result.stdout or preset == "tiny"  # `auto` travels; what it was here is a comment


def test_every_run_writes_a_config_yaml_that_re_runs_it(tmp_path):
    run = make_run(tmp_path / "runs", "mixed", "dpo", "4")
    saved = RunDir.at(run).read_config()
    experiment = configfile.load(run / "config.yaml", "train", EvalSettings)
    assert config.resolve(experiment.preset, experiment.run) == saved
    assert _id_from_file(experiment) == run.name
    result = runner.invoke(app, ["train", "--config", str(run / "config.yaml"), "--out", str(tmp_path / "runs")])
    assert result.exit_code == 0 and f"alreadydone:{run}" in "".join(result.output.split())  # rich wraps the line


def test_a_study_file_and_the_flags_expand_to_the_same_runs(tmp_path):
    experiment = _load(tmp_path, "preset: tiny\ntrain.steps: 2\ngrid:\n  tasks: [math, if]\n  objectives: dpo\n  sync_every: [1, inf]\n"
                                 "  seeds: [0, 1]\neval:\n  limit: 8\n  benchmarks: [math_heldout]\n", command="grid")
    study = plan(experiment, {})
    flags = GridSpec(tasks=("math", "if"), objectives=("dpo",), sync_every=(1, None), preset="tiny", seeds=(0, 1), overrides={"train.steps": "2"})
    assert [run_id(c) for c in expand(study.spec)] == [run_id(c) for c in expand(flags)]
    assert len(expand(flags)) == 8 and study.benchmarks == ("math_heldout",) and study.eval_overrides == {"limit": 8}
    # a flag beats the file: --tasks math, --eval-set limit=4
    narrowed = plan(experiment, {"tasks": ("math",), "eval_overrides": {"limit": "4"}})
    assert {c.task.name for c in expand(narrowed.spec)} == {"math"} and narrowed.eval_overrides == {"limit": "4"}


def test_grid_dry_run_from_a_file_prints_the_flags_run_ids(tmp_path):
    (tmp_path / "study.yaml").write_text("preset: tiny\ngrid: {tasks: [math], objectives: [dpo], sync_every: [1, inf]}\n")
    from_file = runner.invoke(app, ["grid", "--config", str(tmp_path / "study.yaml"), "--dry-run", "--out", str(tmp_path / "runs")])
    from_flags = runner.invoke(app, ["grid", "--preset", "tiny", "--tasks", "math", "--objectives", "dpo", "--sync-every", "1,inf", "--dry-run",
                                     "--out", str(tmp_path / "runs")])
    ids = [run_id(c) for c in expand(GridSpec(tasks=("math",), objectives=("dpo",), sync_every=(1, None), preset="tiny"))]
    assert from_file.exit_code == from_flags.exit_code == 0
    assert all(i in from_file.output and i in from_flags.output for i in ids)


BAD_FILES = [
    ("unknown key", "preset: tiny\noptim:\n  learning_rat: 1e-3\n", 3, "unknown key 'optim.learning_rat'; did you mean optim.lr?"),
    ("unknown key, wrong section", "preset: tiny\nsteps: 5\n", 2, "unknown key 'steps'; did you mean train.steps?"),
    ("wrong type", "preset: tiny\ntrain:\n  steps: 3.5\n", 3, "train.steps expects an integer, got 3.5"),
    ("wrong type, list for a number", "optim.lr: [1, 2]\n", 1, "optim.lr expects a number, got [1, 2]"),
    ("grid axis in a train file", "preset: tiny\ngrid:\n  tasks: [math]\n", 3, "grid.tasks is a `semibench grid` key"),
    ("eval setting in a train file", "eval: {limit: 5}\n", 1, "eval.limit is a `semibench grid` or `semibench eval` key"),
    ("malformed YAML", "preset: tiny\noptim:\n  lr: 1e-3\n   steps: 2\n", 4, "not valid YAML"),
    ("a key set twice", "optim.lr: 1e-3\noptim:\n  lr: 1e-4\n", 3, "optim.lr is set twice (also on line 1)"),
    ("unknown preset", "preset: huge\n", 1, "preset 'huge' is not one of tiny, smol, paper"),
]


@pytest.mark.parametrize("text,line,message", [b[1:] for b in BAD_FILES], ids=[b[0] for b in BAD_FILES])
def test_a_bad_train_file_is_one_line_exit_2_nothing_written(tmp_path, text, line, message):
    path = tmp_path / "exp.yaml"
    path.write_text(text)
    result = runner.invoke(app, ["train", "--config", str(path), "--out", str(tmp_path / "runs")])
    lines = [x for x in result.output.splitlines() if x.strip()]
    assert result.exit_code == 2 and len(lines) == 1, result.output
    assert lines[0].startswith(f"error: {path}:{line}: ") and message in lines[0], lines[0]
    assert not (tmp_path / "runs").exists()


def test_closest_key_comes_first_by_name(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown key 'lr'; did you mean optim.lr\?"):
        _load(tmp_path, "lr: 1e-5\n")
    with pytest.raises(ConfigError, match=r"unknown key 'learning_rate'; did you mean optim.lr\?"):  # TRL's and torchtune's name
        _load(tmp_path, "learning_rate: 1e-5\n")
    with pytest.raises(ConfigError, match=r"unknown key 'grid.task'; did you mean grid.tasks\?"):
        _load(tmp_path, "grid: {task: [math]}\n", command="grid")


@pytest.mark.parametrize("text,message", [
    ("grid: {tasks: [maths]}\n", "grid.tasks has 'maths'; did you mean math?"),
    ("grid: {sync_every: [1, 0]}\n", "sync_every must be >= 1"),
    ("grid: {seeds: [0, one]}\n", "grid.seeds expects an integer, got 'one'"),
    ("eval: {benchmarks: [gsm8kk]}\n", "eval.benchmarks has 'gsm8kk'; did you mean gsm8k?"),
    ("eval: {samples_per_prompt: true}\n", "eval.samples_per_prompt expects an integer, got True"),
    ("grid: {launcher: cloud}\n", "grid.launcher has 'cloud'"),
])
def test_a_bad_grid_file_is_one_line_exit_2_nothing_written(tmp_path, text, message):
    path = tmp_path / "study.yaml"
    path.write_text(text)
    result = runner.invoke(app, ["grid", "--config", str(path), "--out", str(tmp_path / "runs"), "--leaderboard-out", str(tmp_path / "lb")])
    lines = [x for x in result.output.splitlines() if x.strip()]
    assert result.exit_code == 2 and len(lines) == 1 and lines[0].startswith(f"error: {path}:1: ") and message in lines[0], result.output
    assert not (tmp_path / "runs").exists() and not (tmp_path / "lb").exists()


def test_eval_needs_an_eval_section_and_takes_a_study_file(tmp_path):
    with pytest.raises(ConfigError, match="no eval: section"):
        _load(tmp_path, "preset: tiny\noptim.lr: 1e-3\n", command="eval")
    study = _load(tmp_path, "preset: tiny\noptim.lr: 1e-3\ngrid: {tasks: [math]}\neval: {limit: 4, data_dir: /data}\n", command="eval")
    assert study.eval == {"limit": 4, "data_dir": Path("/data")}


def test_eval_config_sets_what_the_flags_do_not(tmp_path):
    """The file's eval: section is the evaluation; a flag given beats it. Real generation by the tiny model, 2 items."""
    (tmp_path / "eval.yaml").write_text("eval:\n  benchmarks: [math_heldout]\n  limit: 2\n  max_new_tokens: 4\n  temperature: 0.5\n  engine: hf\n")
    result = runner.invoke(app, ["eval", "tiny", "--config", str(tmp_path / "eval.yaml"), "--temperature", "0", "--out-dir", str(tmp_path / "ev")])
    assert result.exit_code == 0, result.output
    saved = json.loads((tmp_path / "ev" / "math_heldout.json").read_text())
    assert saved["n"] == 2 and saved["sampling"]["max_new_tokens"] == 4 and saved["sampling"]["temperature"] == 0.0
