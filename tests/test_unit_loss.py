"""What the per-micro-batch loss trains: train_step on a stand-in policy whose gradients can be read per sample."""

import contextlib
import dataclasses
import random
from types import SimpleNamespace

import pytest
import torch

from semibench import config
from semibench.engines.base import Completion
from semibench.training import losses
from semibench.training.step import Models, train_step, unit_loss

VOCAB = 40
FIRST_COMPLETION_TOKEN = 10  # prompts use tokens below it, sample i is the one token FIRST_COMPLETION_TOKEN + i


class TokenScores(torch.nn.Module):
    """A policy with one parameter per token: every kept position puts theta[c] on its target token c
    and 0 on the rest of the vocabulary, so logp(c) = theta[c] - log(exp(theta[c]) + V - 1).

    Only c's own log-prob depends on theta[c], with d logp / d theta = (V - 1) / V at theta = 0: the
    gradient on theta[c] is (V - 1) / V times the loss's gradient on sample c's log-prob, summed over
    every row that sample has in the step's micro-batches. (A stand-in may look at its targets.)"""

    def __init__(self):
        super().__init__()
        self.theta = torch.nn.Parameter(torch.zeros(VOCAB))

    def forward(self, input_ids, attention_mask, position_ids, logits_to_keep, use_cache, past_key_values=None):
        targets = input_ids[:, -(logits_to_keep - 1):]  # what the kept positions predict; the last predicts nothing
        logits = torch.zeros(*targets.shape, VOCAB).scatter(-1, targets[..., None], self.theta[targets][..., None])
        # Scores depend on the sample's own tokens only, so a shared prompt's cache (forward.forward_logps) holds nothing.
        no_cache = SimpleNamespace(layers=[])
        return SimpleNamespace(logits=torch.cat([logits, torch.zeros(len(targets), 1, VOCAB)], dim=1), past_key_values=no_cache)


def one_step(grid, binary, objective, micro_batch_size):
    """theta after one train_step with SGD at lr 1 (so theta = -gradient), from theta = 0."""
    cfg = config.resolve("tiny", {"loss.objective": objective, "loss.grpo_alpha": 1.0, "loss.kl_beta": 0.0, "optim.grad_clip": 1e30,
                                  "train.micro_batch_size": micro_batch_size})
    n = len(grid[0])
    prompt_ids = [[1 + p, 2] for p in range(len(grid))]
    completions = [Completion(i // n, (FIRST_COMPLETION_TOKEN + i,), (-1.0,), "", 0, True) for i in range(len(grid) * n)]
    policy, reference = TokenScores(), TokenScores().requires_grad_(False)
    models = Models(policy, reference, SimpleNamespace(pad_token_id=0), contextlib.nullcontext, "")
    optimizer = torch.optim.SGD(policy.parameters(), lr=1.0)
    metrics = train_step(cfg, models, optimizer, prompt_ids, completions, grid, binary, random.Random(0))
    assert not metrics["skipped"]
    return policy.theta.detach()[FIRST_COMPLETION_TOKEN : FIRST_COMPLETION_TOKEN + len(grid) * n]


@pytest.mark.parametrize("micro_batch_size", [2, 64])  # one pair per micro-batch, and all pairs in one
def test_group_dpo_grpo_gives_each_sample_its_grpo_advantage_once(micro_batch_size):
    """Issue 14, item 8: before, each GroupDPO pair's two rows carried their sample's GRPO advantage, so a
    sample in two pairs got it twice and a group's effective advantages no longer summed to zero."""
    grid = [[1.0, 0.0, 0.0],  # binary: sample 0 is in both pairs, (0, 1) and (0, 2)
            [1.0, 1.0, 0.0],  # binary: sample 5 is in both pairs, (3, 5) and (4, 5)
            [0.2, 0.9, 0.5],  # scalar: pairs (1, 0), (1, 2), (2, 0): each sample in two
            [0.0, 0.0, 0.0]]  # no signal: no pair, no advantage
    binary = [True, True, False, True]
    combined = one_step(grid, binary, "group_dpo_grpo", micro_batch_size)
    dpo_only = one_step(grid, binary, "group_dpo", micro_batch_size)  # the same pairs, the same DPO gradient
    # The GRPO term's update, per sample, in units of its advantage (alpha = 1, KL = 0: ratio'
    # gradient is -A on the sample's log-prob, times (V - 1) / V on its theta).
    effective = ((combined - dpo_only) * VOCAB / (VOCAB - 1)).reshape(len(grid), 3)
    assert effective.sum(-1).tolist() == pytest.approx([0.0] * len(grid), abs=1e-6)
    # Each of the 9 samples in a pair gets its group's mean-centred advantage once, the GRPO mean over them.
    advantages = losses.group_advantages(torch.tensor(grid))
    assert effective[:3].flatten().tolist() == pytest.approx((advantages[:3] / 9).flatten().tolist(), abs=1e-6)
    assert effective[3].abs().max().item() == 0.0


def test_unit_loss_reads_the_objective_from_the_loss_config():
    """Rows come in (chosen, rejected) pairs for DPO; GRPO reads every row with its advantage; the entropy
    term is on the chosen rows for DPO (as the paper's code) and on all rows for GRPO."""
    logps = torch.tensor([[-1.0, -2.0], [-3.0, -1.0], [-0.5, -0.5], [-0.25, -0.25]])
    ref = torch.tensor([[-1.0, -1.0], [-1.0, -1.0], [-1.0, -1.0], [-1.0, -1.0]])
    mask = torch.ones(4, 2)
    entropy = torch.tensor([[1.0, 1.0], [5.0, 5.0], [3.0, 3.0], [7.0, 7.0]])
    inputs = losses.LossInputs(logps, ref, ref.clone(), mask, entropy, advantages=torch.tensor([1.0, -1.0, 0.5, -0.5]),
                               chosen=torch.tensor([0, 2]), rejected=torch.tensor([1, 3]))
    base = config.resolve("tiny", {})
    dpo = dataclasses.replace(base.loss, objective="dpo", dpo_beta=0.5, entropy_coef=0.1, nll_coef=0.0)
    loss, metrics = unit_loss(dpo, inputs)
    expected, _ = losses.dpo_loss(torch.tensor([-3.0, -1.0]), torch.tensor([-4.0, -0.5]), torch.tensor([-2.0, -2.0]), torch.tensor([-2.0, -2.0]), 0.5)
    assert loss.item() == pytest.approx(expected.item() - 0.1 * (1.0 + 3.0) / 2)  # entropy of the chosen rows 0 and 2
    assert metrics["reward_accuracy"] == 0.5 and "grpo_loss" not in metrics  # margins 0.5 x (1, -0.5): one of two right
    grpo = dataclasses.replace(base.loss, objective="grpo", kl_beta=0.0, entropy_coef=0.1)
    loss, metrics = unit_loss(grpo, inputs)
    # ratio = 1: per row -A x 2 tokens -> [-2, 2, -1, 1], mean 0; entropy mean over all rows = 4
    assert loss.item() == pytest.approx(0.0 - 0.1 * 4.0)
    assert metrics["grpo_loss"] == pytest.approx(0.0)


@pytest.mark.parametrize("micro_batch_size", [2, 64])  # a prompt's samples per micro-batch, and all in one
def test_group_dpo_is_the_mean_dpo_loss_over_every_pair(micro_batch_size):
    """GroupDPO (paper Eq. 4) trains each sample as one row however many pairs it is in; its gradient must
    still be the mean over the step's pairs. At policy = reference every margin is 0, so each pair puts
    -beta / 2 / pairs on its chosen sample's log-prob and +beta / 2 / pairs on its rejected one's."""
    grid = [[1.0, 0.0, 1.0, 0.0],  # binary: 4 pairs, each sample in 2
            [0.0, 1.0, 1.0, 1.0],  # binary: 3 pairs, sample 4 rejected in all 3
            [0.2, 0.9, 0.5, 0.5]]  # scalar: (1, 0), (1, 2), (1, 3), (2, 0), (3, 0): 5 pairs
    binary = [True, True, False]
    theta = one_step(grid, binary, "group_dpo", micro_batch_size)
    beta = config.resolve("tiny", {"loss.objective": "group_dpo"}).loss.dpo_beta
    net = [2, -2, 2, -2, -3, 1, 1, 1, -3, 3, 0, 0]  # times chosen minus times rejected, per sample
    expected = [beta / 2 / 12 * k * (VOCAB - 1) / VOCAB for k in net]
    assert theta.tolist() == pytest.approx(expected, rel=1e-5)
