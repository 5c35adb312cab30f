import json

import pytest

from semibench import config
from semibench.config import ConfigError


def test_table4_defaults_follow_task_and_objective():
    math_dpo = config.resolve("smol", {"task.name": "math", "loss.objective": "dpo"})
    assert (math_dpo.loss.dpo_beta, math_dpo.optim.adam_eps, math_dpo.train.ref_sync) == (0.1, 1e-4, True)
    # smol's own DPO beta and Adam eps (the pilot's, presets.py) win over Table 4's chat row; ref_sync follows it
    if_dpo = config.resolve("smol", {"task.name": "if", "loss.objective": "dpo"})
    assert (if_dpo.loss.dpo_beta, if_dpo.optim.adam_eps, if_dpo.train.ref_sync) == (0.1, 1e-4, False)
    paper_if = config.resolve("paper", {"task.name": "if", "loss.objective": "dpo"})
    assert (paper_if.loss.dpo_beta, paper_if.optim.adam_eps, paper_if.train.ref_sync) == (0.01, 1e-8, False)
    grpo = config.resolve("smol", {"task.name": "math", "loss.objective": "grpo"})
    assert (grpo.loss.kl_beta, grpo.train.ref_sync) == (0.001, False)
    # user overrides win over Table 4
    assert config.resolve("smol", {"task.name": "math", "train.ref_sync": "false"}).train.ref_sync is False


def test_every_table4_hyperparameter_is_a_field():
    keys = set(config.all_keys())
    for key in ["loss.dpo_beta", "loss.kl_beta", "optim.lr", "optim.adam_eps", "optim.adam_betas", "optim.weight_decay",
                "optim.grad_clip", "sampling.max_new_tokens", "train.prompts_per_step", "sampling.samples_per_prompt",
                "sampling.temperature", "sampling.top_p", "train.ref_sync", "optim.lr_schedule", "optim.warmup_steps"]:
        assert key in keys


@pytest.mark.parametrize("raw,expected", [("1", 1), ("10", 10), ("inf", None), ("INF", None), ("none", None)])
def test_sync_every_parsing(raw, expected):
    assert config.resolve("tiny", {"train.sync_every": raw}).train.sync_every == expected


@pytest.mark.parametrize("raw", ["0", "-3", "often"])
def test_sync_every_rejects_bad_values(raw):
    with pytest.raises(ConfigError, match="sync_every"):
        config.resolve("tiny", {"train.sync_every": raw})


def test_unknown_key_names_closest_valid_keys():
    with pytest.raises(ConfigError) as err:
        config.resolve("tiny", {"optim.learning_rat": "1"})
    assert "unknown config key 'optim.learning_rat'" in str(err.value)
    with pytest.raises(ConfigError, match="did you mean loss.dpo_beta"):
        config.resolve("tiny", {"loss.dpo_bta": "1"})


def test_typed_coercion_and_errors():
    cfg = config.resolve("tiny", config.parse_set_args(["optim.lr=3e-4", "optim.adam_betas=0.8,0.99", "loss.length_normalize=yes"]))
    assert cfg.optim.lr == 3e-4 and cfg.optim.adam_betas == (0.8, 0.99) and cfg.loss.length_normalize is True
    with pytest.raises(ConfigError, match="optim.lr expects float"):
        config.resolve("tiny", {"optim.lr": "fast"})
    with pytest.raises(ConfigError, match="key=value"):
        config.parse_set_args(["optim.lr"])
    with pytest.raises(ConfigError, match="loss.objective must be one of"):
        config.resolve("tiny", {"loss.objective": "ppo"})


def test_an_optional_key_takes_its_type_or_none():
    """train.prompt_order_seed: unset, the order follows train.seed; set, it alone moves the order."""
    assert config.resolve("tiny", {"train.seed": "2"}).train.order_seed == 2
    cfg = config.resolve("tiny", {"train.seed": "2", "train.prompt_order_seed": "0"})
    assert cfg.train.prompt_order_seed == 0 and cfg.train.order_seed == 0 and cfg.train.seed == 2
    assert config.resolve("tiny", {"train.prompt_order_seed": "none"}).train.prompt_order_seed is None
    assert config.from_dict(json.loads(config.to_json(cfg))) == cfg
    with pytest.raises(ConfigError, match="train.prompt_order_seed expects int, got 'first'"):
        config.resolve("tiny", {"train.prompt_order_seed": "first"})


def test_json_round_trip_is_exact():
    cfg = config.resolve("smol", {"train.sync_every": "inf", "task.name": "mixed", "loss.objective": "grpo"})
    text = config.to_json(cfg)
    assert json.loads(text)["train"]["sync_every"] == "inf"
    assert config.from_dict(json.loads(text)) == cfg


def test_configs_are_frozen():
    cfg = config.resolve("tiny")
    with pytest.raises(Exception):
        cfg.optim.lr = 1.0


@pytest.mark.parametrize("overrides,message", [
    ({"train.engine": "hf", "train.generator_gpus": "7"}, "set train.engine=vllm"),
    ({"train.engine": "vllm", "train.generator_gpus": "6,7"}, "one GPU index"),
])
def test_generator_gpus_needs_vllm_and_one_gpu(overrides, message):
    with pytest.raises(ConfigError, match=message):
        config.resolve("smol", overrides)
    assert config.resolve("smol", {"train.engine": "vllm", "train.generator_gpus": "7"}).train.generator_gpus == "7"


def test_stale_grpo_without_an_off_policy_correction_is_warned_about():
    """The paper's semi-online GRPO weights stale rollouts as on-policy; the run says so and names the fix."""
    semi = config.resolve("tiny", {"loss.objective": "grpo", "train.sync_every": "4"})
    [line] = config.warnings_for(semi)
    assert "s=4" in line and "loss.tis_cap" in line
    assert config.warnings_for(config.resolve("tiny", {"loss.objective": "grpo", "train.sync_every": "1"})) == []
    assert config.warnings_for(config.resolve("tiny", {"loss.objective": "dpo", "train.sync_every": "inf"})) == []
    corrected = config.resolve("tiny", {"loss.objective": "grpo", "train.sync_every": "4", "loss.tis_cap": "2", "sampling.temperature": "0.7"})
    [line] = config.warnings_for(corrected)
    assert "T = 1 and top-p = 1" in line and "T = 0.7" in line
