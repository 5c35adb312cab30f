"""The shipped recipes (semibench/recipes/*.yaml): each loads, validates without training, and is exactly
the study its preset and flags run, so a recipe cannot drift from the preset silently."""

import pytest

from semibench import configfile
from semibench.config import ConfigError
from semibench.evals.settings import EvalSettings
from semibench.grid import GridSpec, defaults_for, eval_settings, expand
from semibench.presets import TABLE4
from semibench.runs import run_id
from semibench.study import plan

RECIPES = configfile.recipe_names()


def test_the_paper_studies_and_the_default_ship():
    assert {"paper-math", "paper-if", "paper-mixed", "default", "tiny"} <= set(RECIPES)


DESIGNS = {"p6x8"}  # a pilot's design: its preset's study with its own values, checked against the pilot's command


@pytest.mark.parametrize("name", [r for r in RECIPES if r not in DESIGNS])
def test_a_recipe_is_its_presets_study(name):
    study = plan(configfile.load(name, "grid", EvalSettings), {})
    flags = GridSpec(preset=study.spec.preset, tasks=study.spec.tasks)  # `semibench grid --preset P --tasks T`
    configs = expand(study.spec)
    assert configs and [run_id(c) for c in configs] == [run_id(c) for c in expand(flags)]
    assert study.benchmarks == defaults_for(study.spec.preset).benchmarks
    assert eval_settings(study.spec, study.eval_overrides) == eval_settings(flags, {})
    assert study.launcher == "local" and not study.slurm


@pytest.mark.parametrize("name", [r for r in RECIPES if r.startswith("paper-")])
def test_every_value_of_a_paper_recipe_says_where_it_comes_from(name):
    """A value line without a comment would be a number nobody can check against the paper."""
    path = configfile.find(name)
    values = [line for line in path.read_text().splitlines() if ":" in line and not line.lstrip().startswith("#") and not line.rstrip().endswith(":")]
    bare = [line for line in values if "#" not in line and not line.startswith(("preset:", "  tasks:", "  objectives:", "  seeds: [0]"))]
    assert not bare, bare


def test_the_paper_recipes_hold_table4():
    """Table 4's values that hold for every run of a study are written in its recipe (lr, eps, clip, length, batch)."""
    for task in ("math", "if", "mixed"):
        run = configfile.load(f"paper-{task}", "grid", EvalSettings).run
        for key in ("optim.lr", "optim.adam_eps", "optim.grad_clip", "sampling.max_new_tokens", "train.prompts_per_step"):
            assert run[key] == TABLE4[("dpo", task)][key] == TABLE4[("grpo", task)][key], (task, key)


def test_the_default_recipe_names_the_preset_and_axes_only():
    """It must stay true while the smol preset and its grid defaults change: no copied values."""
    default = configfile.load("default", "grid", EvalSettings)
    assert default.preset == "smol" and default.run == {} and default.eval == {}
    assert default.grid == {"tasks": ("mixed",), "objectives": ("dpo", "grpo")}


def test_a_shipped_recipe_is_found_by_name():
    assert configfile.find("paper-math") == configfile.RECIPES_DIR / "paper-math.yaml"
    with pytest.raises(ConfigError, match="no such file; pass a YAML file or a shipped recipe"):
        configfile.find("paper-maths")


def test_the_p6x8_recipe_is_the_pilots_command():
    """The same runs, ids and evaluation as the command docs/pilot.md ran P6x8's grids with, so its published runs
    resume under the file and a new data seed runs the same design."""
    study = plan(configfile.load("p6x8", "grid", EvalSettings), {"overrides": {"task.data_seed": "6"}})
    overrides = {"sampling.samples_per_prompt": "8", "train.prompts_per_step": "6", "train.steps": "12", "train.checkpoint_every": "12",
                 "task.data_seed": "6"}
    flags = GridSpec(preset="smol", tasks=("mixed",), objectives=("group_dpo", "grpo"), overrides=overrides)
    assert [run_id(c) for c in expand(study.spec)] == [run_id(c) for c in expand(flags)]
    assert len(expand(flags)) == 12 and {c.task.data_seed for c in expand(study.spec)} == {6}
    assert eval_settings(study.spec, study.eval_overrides) == eval_settings(flags, {"if_heldout_size": "1000"})
    assert eval_settings(study.spec, study.eval_overrides) != eval_settings(flags, {})  # the 1,000 requests are in the file
