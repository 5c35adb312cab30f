"""End-to-end runs on the `tiny` preset: real generation, rewards, losses and updates, in seconds."""

import json

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from semibench import config
from semibench.models import resolve_model
from semibench.runs import run_id
from semibench.training.train import train

TIMING = ("time/", "tokens_per_s")


def _run(tmp_path, task, objective, **overrides):
    cfg = config.resolve("tiny", {"task.name": task, "loss.objective": objective, **overrides})
    return cfg, train(cfg, tmp_path / "runs")


def _deterministic(rows):
    return [{k: v for k, v in r.items() if not k.startswith(TIMING)} for r in rows]


@pytest.mark.parametrize("task", ["math", "if", "mixed"])
@pytest.mark.parametrize("objective", ["dpo", "grpo"])
def test_tiny_run_writes_artifacts_and_learns(tmp_path, task, objective):
    cfg, run = _run(tmp_path, task, objective)
    assert run.name == run_id(cfg) and (run / "DONE").exists()
    saved = json.loads((run / "config.json").read_text())
    assert config.from_dict(saved) == cfg
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [0, 1, 2]
    for key in ["reward", "rollout_length", "generator_version", "staleness", "time/generate", "time/reward", "time/train", "time/sync", "tokens_per_s", "frac_valid_prompts"]:
        assert key in rows[0]
    if task == "mixed":
        assert "reward/math" in rows[0] and "reward/if" in rows[0]
    # The learning path really ran: signal found and an update taken on at least one step.
    assert any(r["frac_valid_prompts"] > 0 and not r["skipped"] for r in rows)
    assert any(("dpo_loss" if objective == "dpo" else "grpo_loss") in r for r in rows)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["num_updates"] == sum(not r["skipped"] for r in rows) >= 1
    assert summary["num_updates"] + summary["skipped_steps"] == summary["steps"] == 3

    checkpoint = run / "checkpoints" / "step_000003"
    assert (checkpoint / "DONE").exists()
    trained = AutoModelForCausalLM.from_pretrained(checkpoint)
    start = AutoModelForCausalLM.from_pretrained(resolve_model("tiny"))
    diff = max((a - b).abs().max().item() for a, b in zip(trained.state_dict().values(), start.state_dict().values()))
    assert diff > 0


@pytest.mark.parametrize("objective", ["dpo", "group_dpo"])  # GroupDPO: the real model's twin of test_unit_loss's stand-in
def test_dpo_first_step_loss_is_ln2(tmp_path, objective):
    cfg, run = _run(tmp_path, "if", objective)
    first = json.loads((run / "metrics.jsonl").read_text().splitlines()[0])
    if objective == "group_dpo":  # more pairs than prompts with signal: samples were shared between pairs
        assert first["num_units"] > first["frac_valid_prompts"] * cfg.train.prompts_per_step
    assert first["dpo_loss"] == pytest.approx(0.6931471805599453, abs=1e-6)
    assert first["kl"] == pytest.approx(0.0, abs=1e-7)
    assert first["mismatch_kl"] == pytest.approx(0.0, abs=1e-5)  # fp32 generator = trainer at step 0


def test_identical_runs_identical_metrics(tmp_path):
    _, a = _run(tmp_path / "a", "mixed", "grpo")
    _, b = _run(tmp_path / "b", "mixed", "grpo")
    rows_a = [json.loads(line) for line in (a / "metrics.jsonl").read_text().splitlines()]
    rows_b = [json.loads(line) for line in (b / "metrics.jsonl").read_text().splitlines()]
    assert _deterministic(rows_a) == _deterministic(rows_b)
    wa = load_file(a / "checkpoints" / "step_000003" / "model.safetensors")
    wb = load_file(b / "checkpoints" / "step_000003" / "model.safetensors")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


@pytest.mark.parametrize("sync_every,versions", [("1", [0, 1, 2, 3]), ("3", [0, 0, 0, 3]), ("inf", [0, 0, 0, 0])])
def test_generator_version_follows_the_dial(tmp_path, sync_every, versions):
    _, run = _run(tmp_path, "if", "dpo", **{"train.sync_every": sync_every, "train.steps": 4})
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["generator_version"] for r in rows] == versions
    assert [r["staleness"] for r in rows] == [s - v for s, v in enumerate(versions)]
    # A stale generator really serves old weights: once the trainer has moved, its log-probs differ.
    if versions[1] == 0:
        assert rows[1]["mismatch_kl"] > 1e-4
    else:  # freshly synced fp32 generator: same weights, same log-probs
        assert rows[1]["mismatch_kl"] == pytest.approx(0.0, abs=1e-5)


def test_lr_schedule_warmup_then_cosine_to_floor():
    from semibench.training.train import lr_at

    # lr 0.5 (config refuses lr >= 1): every value below is half the unit schedule.
    cfg = config.resolve("tiny", {"optim.lr": "0.5", "optim.warmup_steps": "2", "train.steps": "12", "optim.final_lr_scale": "0.2"})
    assert [lr_at(cfg, s) for s in (0, 1)] == [0.25, 0.5]
    assert lr_at(cfg, 2) == pytest.approx(0.5)
    assert lr_at(cfg, 7) == pytest.approx(0.3)  # half way through the cosine: 0.5 * (0.2 + 0.8 * 0.5)
    assert lr_at(cfg, 12) == pytest.approx(0.1)
    constant = config.resolve("tiny", {"optim.lr": "0.5", "optim.lr_schedule": "constant"})
    assert lr_at(constant, 2) == 0.5


@pytest.mark.parametrize("entropy_coef, grad", [(0.0, False), (1e-4, True)])
def test_entropy_carries_a_gradient_only_when_the_loss_uses_it(entropy_coef, grad):
    """Entropy is [B, T, V] work: as a plain metric it must not sit in the autograd graph."""
    from semibench.training import rollouts
    from semibench.training.forward import forward_logps
    from semibench.training.train import load_models

    cfg = config.resolve("tiny", {"loss.entropy_coef": entropy_coef})
    models = load_models(cfg)
    batch = rollouts.pack([[1, 2, 3]], [[4, 5]], [[-1.0, -1.0]], models.tokenizer.pad_token_id)
    logps, entropy = forward_logps(models.policy, batch, with_entropy=True, entropy_grad=bool(cfg.loss.entropy_coef))
    assert logps.requires_grad and entropy.requires_grad == grad
    assert torch.isfinite(entropy).all() and (entropy > 0).all()


@pytest.mark.parametrize("entropy_grad", [False, True])
def test_shared_prompts_give_the_forward_of_whole_rows(entropy_grad):
    """Each distinct prompt run once, its KV repeated per row: the same log-probs, entropies and
    gradients as every row running its own prompt (rows of uneven prompt and sample lengths, an empty sample)."""
    from semibench.training import rollouts
    from semibench.training.forward import forward_logps
    from semibench.training.train import load_models

    policy = load_models(config.resolve("tiny", {"model.autocast_dtype": ""})).policy
    prompts = [[5, 6, 7, 8], [9, 10], [5, 6, 7, 8], [9, 10], [5, 6, 7, 8]]
    completions = [[11, 12, 13], [14], [15, 16, 17, 18, 19], [20, 21], []]

    def run(share: bool):
        batch = rollouts.pack(prompts, completions, [[-1.0] * len(c) for c in completions], 0, share_prompts=share)
        logps, entropy = forward_logps(policy, batch, with_entropy=True, entropy_grad=entropy_grad)
        mask = batch.completion_mask
        ((logps * mask).sum() + (entropy * mask).sum() * entropy_grad).backward()
        grads = [p.grad.clone() for p in policy.parameters()]
        policy.zero_grad(set_to_none=True)
        return logps.detach() * mask, entropy.detach() * mask, grads

    (logps, entropy, grads), (shared_logps, shared_entropy, shared_grads) = run(False), run(True)
    torch.testing.assert_close(shared_logps, logps, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(shared_entropy, entropy, rtol=1e-5, atol=1e-5)
    for got, want in zip(shared_grads, grads):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
    assert max(float(g.abs().max()) for g in grads) > 1e-2  # a real gradient, not zeros on both sides


def test_rows_of_prompts_gradients_repeat_bit_for_bit():
    """Rows repeat their prompt's KV; the backward adds them back into the prompt. Advanced indexing's
    backward (the cache's batch_select_indices) adds with atomics in thread order and gave a different
    last bit from one call to the next on 2 threads; rows_of_prompts must give the same bits every time."""
    from types import SimpleNamespace

    from semibench.training.forward import rows_of_prompts

    torch.manual_seed(0)
    keys = torch.randn(6, 3, 400, 64, requires_grad=True)  # 6 prompts, SmolLM2's 3 KV heads x 64, 400 positions
    row_prompt = torch.tensor([0, 1, 0, 2, 0, 1, 3, 4, 5, 2, 2, 0, 1, 3, 4, 5] * 2)
    upstream = torch.randn(len(row_prompt), 3, 400, 64)

    def gradient() -> torch.Tensor:
        cache = SimpleNamespace(layers=[SimpleNamespace(keys=keys, values=keys * 2)])
        rows_of_prompts(cache, row_prompt)
        keys.grad = None
        (cache.layers[0].keys * upstream + cache.layers[0].values).sum().backward()
        return keys.grad.clone()

    first = gradient()
    torch.testing.assert_close(first[0], upstream[row_prompt == 0].sum(0) + 2 * (row_prompt == 0).sum(), rtol=1e-5, atol=1e-4)
    assert all(torch.equal(gradient(), first) for _ in range(10))


def test_little_signal_warns_only_when_the_first_five_steps_all_lack_it():
    from semibench.training.train import little_signal

    cfg = config.resolve("tiny", {"loss.objective": "grpo"})
    rows = [{"frac_valid_prompts": f} for f in (0.1, 0.0, 0.2, 0.24, 0.1, 0.9)]
    line = little_signal(rows, cfg)
    assert line is not None and "first 5 steps" in line and "mean 0.13" in line and "grpo little to learn from" in line
    assert little_signal(rows[:4], cfg) is None  # too early to say
    assert little_signal([{"frac_valid_prompts": 0.25}] + rows[1:], cfg) is None  # one step with a quarter of its prompts is enough


def test_balancing_prompts_that_carry_no_constraint_types_fails_before_anything_is_written(tmp_path):
    from semibench.config import ConfigError

    with pytest.raises(ConfigError, match="task.balance_if_types needs IF prompts that carry constraints"):
        _run(tmp_path, "mixed", "dpo", **{"task.balance_if_types": "true"})  # tiny's IF prompts are synthetic requests
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_the_prompt_order_seed_moves_the_prompts_and_the_training_seed_the_samples(tmp_path, monkeypatch):
    """train.prompt_order_seed=0 at train.seed=1 trains on seed 0's prompts, in seed 0's order, but samples
    them with seed 1's stream; unset, seed 1 moves both."""
    from semibench.tasks import PromptSampler

    served: dict[str, list] = {}
    real_batch = PromptSampler.batch

    def recording(self, step):  # the real batch, also kept for the comparison
        out = real_batch(self, step)
        served.setdefault(current, []).append([p.text for p in out])
        return out

    monkeypatch.setattr(PromptSampler, "batch", recording)
    rows = {}
    for current, overrides in [("a", {"train.seed": "0"}), ("b", {"train.seed": "1", "train.prompt_order_seed": "0"}), ("c", {"train.seed": "1"})]:
        _, run = _run(tmp_path / current, "mixed", "grpo", **overrides)
        rows[current] = [json.loads(line)["generated_tokens"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    first = lambda k: served[k][: 3]  # noqa: E731 - the run's three steps (the offline prefetch is not used here)
    assert first("b") == first("a") and first("c") != first("a")
    assert rows["b"] != rows["a"]  # same prompts, another sampling stream
