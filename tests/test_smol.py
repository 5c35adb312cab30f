"""A short run on the real SmolLM2-135M-Instruct (converted from the packaged GGUF): slow, still in CI."""

import json

import pytest
import torch
from safetensors.torch import load_file

from semibench import config
from semibench.models import resolve_model
from semibench.training.train import train


@pytest.mark.slow
def test_smol_mixed_grpo_two_steps(tmp_path):
    cfg = config.resolve("smol", {
        "task.name": "mixed", "loss.objective": "grpo", "train.steps": "2", "train.prompts_per_step": "2",
        "sampling.max_new_tokens": "24", "sampling.samples_per_prompt": "4",
    })
    run = train(cfg, tmp_path)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and all("reward/math" in r and "reward/if" in r for r in rows)
    assert all(0.0 <= r["reward/if"] <= 1.0 for r in rows)
    assert rows[0]["mismatch_kl"] < 0.05  # bf16 generator vs fp32/bf16-autocast trainer: numerics only
    trained = load_file(run / "checkpoints" / "step_000002" / "model.safetensors")
    start = load_file(f"{resolve_model('smollm2')}/model.safetensors")
    assert sum(t.numel() for t in trained.values()) == pytest.approx(134.5e6, rel=0.01)
    assert any(not torch.equal(trained[k], start[k]) for k in trained)
