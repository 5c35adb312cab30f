"""The TRL comparison runs the same step on both sides (config mapping only; the bench itself is run by hand)."""

import pytest

from semibench import config
from semibench import perf as bench

pytest.importorskip("trl")


@pytest.mark.parametrize("objective", ["grpo", "dpo"])
def test_trl_and_semibench_run_the_same_step(objective, tmp_path):
    cfg = config.resolve("smol", bench.semibench_overrides(objective, "hf", 3))
    trl = bench.trl_config(objective, cfg, 3, str(tmp_path))
    samples = 2 if objective == "dpo" else trl.num_generations  # TRL's online DPO always draws two
    prompts = trl.per_device_train_batch_size // (samples if objective == "grpo" else 1)
    assert (prompts, samples) == (cfg.train.prompts_per_step, cfg.sampling.samples_per_prompt)
    assert cfg.train.sync_every == 1 and cfg.loss.objective == objective  # online on both sides
    length = trl.max_completion_length if objective == "grpo" else trl.max_new_tokens
    assert length == cfg.sampling.max_new_tokens == 128
    assert (trl.temperature, trl.top_p, trl.learning_rate) == (cfg.sampling.temperature, cfg.sampling.top_p, cfg.optim.lr)
    beta = cfg.loss.kl_beta if objective == "grpo" else cfg.loss.dpo_beta
    assert trl.beta in (beta, [beta])  # online DPO keeps a one-element list as a float
    # Both sides compute in the precision semibench resolved on this CPU (bf16 autocast where native, fp32
    # on AVX2) over fp32 weights, and TRL generates with its KV cache on.
    assert trl.bf16 == (bench.compute_precision(cfg) == "bfloat16") and cfg.model.dtype == "float32"
    assert not trl.gradient_checkpointing and trl.generation_kwargs == {"use_cache": True}
    assert cfg.train.micro_batch_size == prompts * samples  # one forward over the step's sequences, as TRL
