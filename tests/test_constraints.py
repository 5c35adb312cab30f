"""Verifiable instructions: the prompts, the reward and the held-out set, checked by lm-eval's IFEval code."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from semibench import config
from semibench.config import ConfigError
from semibench.constraints import constrained_instructions, constraint_types, follows, follows_all, parse_spec
from semibench.rewards import Rewarder, check_prompts
from semibench.tasks import load_prompts
from semibench.training import rollouts

IFEVAL = Path(__file__).resolve().parents[1] / "tasks" / "data" / "ifeval" / "input_data.jsonl"


def test_the_set_is_a_function_of_its_seed_and_draws_every_declared_type():
    a, b = constrained_instructions(300, 0), constrained_instructions(300, 0)
    assert a == b and len({c.text for c in a}) == 300
    assert {c.text for c in constrained_instructions(300, 1)} != {c.text for c in a}
    assert {c.spec["instruction_id_list"][0] for c in a} == set(constraint_types())


def test_the_description_is_the_one_lm_eval_checks():
    """The prompt's wording comes from the checker itself, so what is asked is what is checked."""
    from lm_eval.tasks.ifeval import instructions_registry

    for c in constrained_instructions(60, 3):
        (kind,), (kwargs,) = c.spec["instruction_id_list"], c.spec["kwargs"]
        checker = instructions_registry.INSTRUCTION_DICT[kind](kind)
        assert c.text.endswith(checker.build_description(**kwargs))


def test_no_training_request_is_an_ifeval_prompt():
    ifeval = {json.loads(line)["prompt"] for line in IFEVAL.read_text().splitlines()}
    assert not {c.text for c in constrained_instructions(2000, 0)} & ifeval


@pytest.mark.parametrize("kind, kwargs, follows_it, breaks_it", [
    ("punctuation:no_comma", {}, "Bread is warm and soft.", "Bread is warm, and soft."),
    ("startend:end_checker", {"end_phrase": "That is all."}, "Trains run on rails. That is all.", "That is all. Trains run on rails."),
    ("length_constraints:number_words", {"num_words": 20, "relation": "less than"}, "Short and sweet.", "word " * 25),
    ("detectable_content:postscript", {"postscript_marker": "P.S."}, "Hello.\nP.S. See you soon.", "Hello. See you soon."),
    ("keywords:existence", {"keywords": ["sun", "river"]}, "The sun set over the river.", "The moon rose."),
])
def test_a_response_that_follows_scores_1_and_one_that_does_not_scores_0(kind, kwargs, follows_it, breaks_it):
    spec = {"instruction_id_list": [kind], "kwargs": [kwargs]}
    assert follows_all(spec, follows_it) == 1.0 and follows_all(spec, breaks_it) == 0.0
    assert follows(spec, "") == [False]  # an empty answer follows nothing, as IFEval scores it


def test_two_constraints_a_prompt_score_all_or_nothing():
    spec = {"instruction_id_list": ["punctuation:no_comma", "keywords:existence"], "kwargs": [{}, {"keywords": ["sun"]}]}
    assert follows(spec, "The sun, at last.") == [False, True] and follows_all(spec, "The sun, at last.") == 0.0
    assert follows_all(spec, "The sun at last.") == 1.0
    assert all(len(c.spec["instruction_id_list"]) == 2 for c in constrained_instructions(20, 0, per_prompt=2))


def test_the_reward_is_pass_fail_per_prompt_and_pairs_a_pass_with_a_fail():
    cfg = config.resolve("tiny", {"task.name": "if", "task.if_data": "constraints", "reward.if_reward": "constraints"})
    pools = load_prompts(cfg.task)
    prompt = next(p for p in pools["if"] if json.loads(p.gold)["instruction_id_list"] == ["punctuation:no_comma"])
    rewarder = Rewarder(cfg.reward, ["if"])
    try:
        rewards = rewarder(["if"] * 4, [prompt.text] * 4, [prompt.gold] * 4, ["no commas here", "one, comma", "plain", "a, b"])
    finally:
        rewarder.close()
    assert rewards == [1.0, 0.0, 1.0, 0.0] and rewarder.is_binary("if") and rewarder.is_binary("math")
    pairs = rollouts.dpo_pairs([rewards], [True], random.Random(0))
    assert rewards[pairs.chosen[0]] == 1.0 and rewards[pairs.rejected[0]] == 0.0


def test_the_judge_reward_stays_scalar():
    cfg = config.resolve("tiny", {"task.name": "if"})
    assert cfg.reward.if_reward == "judge" and not Rewarder(cfg.reward, []).is_binary("if")


def test_constraint_reward_without_constraints_is_one_line_before_training(tmp_path):
    with pytest.raises(ConfigError, match="task.if_data=constraints"):
        config.resolve("tiny", {"task.name": "mixed", "reward.if_reward": "constraints"})
    rows = tmp_path / "if.jsonl"
    rows.write_text(json.dumps({"prompt": "Say hi.", "instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]}) + "\n"
                    + json.dumps({"prompt": "Say bye."}) + "\n")
    cfg = config.resolve("tiny", {"task.name": "if", "task.if_data": str(rows), "reward.if_reward": "constraints"})
    pools = load_prompts(cfg.task)
    assert parse_spec(pools["if"][0].gold, "row 1")["instruction_id_list"] == ["punctuation:no_comma"]  # IFEval-style rows carry theirs
    with pytest.raises(ConfigError, match=r"IF prompt 1 \(.*if.jsonl\) carries no constraints"):
        check_prompts(cfg.reward, pools)


def test_heldout_requests_are_outside_the_training_pool_and_follow_the_run():
    from semibench.evals.data import Origin
    from semibench.evals.instructions import heldout_items, heldout_spec

    cfg = config.resolve("tiny", {"task.name": "mixed", "task.if_data": "constraints", "reward.if_reward": "constraints", "task.num_prompts": 500})
    spec = heldout_spec(Origin(cfg, Path("runs/x/config.json"), True))
    items = heldout_items(spec, 200)
    training = {c.text for c in constrained_instructions(500, cfg.task.data_seed)}
    assert len(items) == 200 and not {c.text for c in items} & training
    other = heldout_items(heldout_spec(Origin(config.apply_overrides(cfg, {"task.data_seed": 1}), Path("x"), True)), 200)
    assert {c.text for c in other} != {c.text for c in items}  # another data seed, other held-out items
