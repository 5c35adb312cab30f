import math

import pytest
import torch

from semibench.training import losses


def test_dpo_loss_is_ln2_when_policy_equals_reference():
    logps = torch.tensor([-12.5, -3.0, -40.25])
    other = torch.tensor([-7.0, -9.5, -1.0])
    loss, metrics = losses.dpo_loss(logps, other, logps.clone(), other.clone(), beta=0.1)
    assert loss.item() == pytest.approx(math.log(2), abs=1e-7)
    assert metrics["reward_margin"] == 0.0


def test_dpo_loss_hand_derived():
    # margin = beta * ((pc - rc) - (pr - rr)) = 0.5 * ((-1 - -2) - (-3 - -2)) = 0.5 * 2 = 1
    loss, metrics = losses.dpo_loss(torch.tensor([-1.0]), torch.tensor([-3.0]), torch.tensor([-2.0]), torch.tensor([-2.0]), beta=0.5)
    assert loss.item() == pytest.approx(math.log(1 + math.exp(-1.0)), rel=1e-6)
    assert metrics["reward_accuracy"] == 1.0


def test_dpo_gradient_pushes_chosen_up_and_rejected_down():
    chosen = torch.tensor([-5.0], requires_grad=True)
    rejected = torch.tensor([-5.0], requires_grad=True)
    loss, _ = losses.dpo_loss(chosen, rejected, torch.tensor([-5.0]), torch.tensor([-5.0]), beta=0.1)
    loss.backward()
    # d/dx -log sigmoid(beta x) at 0 = -beta/2
    assert chosen.grad.item() == pytest.approx(-0.05)
    assert rejected.grad.item() == pytest.approx(0.05)


def test_sequence_logps_sum_and_mean():
    token = torch.tensor([[-1.0, -2.0, -3.0], [0.0, -4.0, -4.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [0.0, 1.0, 1.0]])
    assert losses.sequence_logps(token, mask).tolist() == [-6.0, -8.0]
    assert losses.sequence_logps(token, mask, length_normalize=True).tolist() == [-2.0, -4.0]


def test_group_advantages_sum_to_zero_and_equal_group_is_zero():
    rewards = torch.tensor([[1.0, 0.0, 0.0, 1.0], [0.3, 0.9, 0.1, 0.5], [1.0, 1.0, 1.0, 1.0]])
    adv = losses.group_advantages(rewards)
    assert torch.allclose(adv.sum(-1), torch.zeros(3), atol=1e-6)
    assert adv[0].tolist() == [0.5, -0.5, -0.5, 0.5]
    assert adv[2].abs().max().item() == 0.0
    scaled = losses.group_advantages(rewards, scale_by_std=True)
    assert scaled[2].abs().max().item() == 0.0
    # std (unbiased) of [1,0,0,1] = sqrt(1/3): 0.5 / 0.57735 = 0.866
    assert scaled[0, 0].item() == pytest.approx(0.5 / math.sqrt(1 / 3), rel=1e-4)


def test_k3_kl_zero_at_equality_and_hand_value():
    a = torch.tensor([-1.0, -2.0])
    assert losses.k3_kl(a, a).abs().max().item() == 0.0
    # r = ref - logp = log 2: exp(r) - r - 1 = 1 - ln 2
    val = losses.k3_kl(torch.tensor([0.0]), torch.tensor([math.log(2)]))
    assert val.item() == pytest.approx(1 - math.log(2), rel=1e-6)


def test_grpo_loss_hand_derived_value_and_gradient():
    logps = torch.tensor([[-1.0, -2.0], [-0.5, 0.0]], requires_grad=True)
    mask = torch.tensor([[1.0, 1.0], [1.0, 0.0]])
    adv = torch.tensor([1.0, -2.0])
    loss, metrics = losses.grpo_loss(logps, logps.detach().clone(), logps.detach().clone(), adv, mask, kl_beta=0.1)
    # ratio = 1, KL = 0: per-seq token sums of -A: seq0: -1 * 2 tokens = -2; seq1: +2 * 1 token = 2; mean 0
    assert loss.item() == pytest.approx(0.0)
    assert metrics["kl"] == 0.0
    loss.backward()
    # d loss / d logp_t = -A / B on real tokens, 0 on padding
    assert logps.grad.tolist() == [[-0.5, -0.5], [1.0, 0.0]]


def test_grpo_length_normalisation_divides_by_tokens():
    logps = torch.zeros(1, 4, requires_grad=True)
    mask = torch.ones(1, 4)
    loss, _ = losses.grpo_loss(logps, logps.detach(), logps.detach(), torch.tensor([1.0]), mask, 0.0, length_normalize=True)
    loss.backward()
    assert logps.grad.tolist() == [[-0.25] * 4]


def test_grpo_truncated_importance_sampling_caps_ratio():
    logps = torch.tensor([[math.log(0.5), math.log(0.5)]], requires_grad=True)
    generator = torch.tensor([[math.log(0.1), math.log(0.4)]])  # ratios 5.0 and 1.25
    mask = torch.ones(1, 2)
    loss, metrics = losses.grpo_loss(logps, logps.detach(), generator, torch.tensor([1.0]), mask, 0.0, tis_cap=2.0)
    loss.backward()
    assert logps.grad[0].tolist() == pytest.approx([-2.0, -1.25])
    assert metrics["tis_weight"] == pytest.approx((2.0 + 1.25) / 2)


def test_entropy_of_uniform_is_log_vocab():
    assert losses.token_entropy(torch.zeros(3, 8)).tolist() == pytest.approx([math.log(8)] * 3)


def test_nll_and_mismatch_kl():
    logps = torch.tensor([[-1.0, -3.0]])
    mask = torch.ones(1, 2)
    assert losses.nll_loss(logps, mask).item() == pytest.approx(2.0)
    assert losses.mismatch_kl(logps, logps.clone(), mask) == 0.0
    assert losses.mismatch_kl(logps, logps - 0.1, mask) > 0.0


def test_padded_positions_with_huge_log_ratios_give_no_nan():
    """A pad token's log-prob can differ by > 88 nats between policy and reference: exp overflows to
    inf, and inf x 0 was NaN in the k3 KL, the GRPO loss and its gradient (the mask now applies first)."""
    logps = torch.tensor([[-1.0, -2.0, -200.0], [-0.5, -float("inf"), -300.0]], requires_grad=True)
    ref = torch.tensor([[-1.1, -2.1, -1.0], [-0.4, -1.0, -1.0]])
    gen = torch.tensor([[-1.0, -2.0, 0.0], [-0.5, -1.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    assert torch.isfinite(losses.k3_kl(logps, ref, mask)).all()
    loss, metrics = losses.grpo_loss(logps, ref, gen, torch.tensor([1.0, -1.0]), mask, kl_beta=0.1, tis_cap=2.0)
    loss.backward()
    assert math.isfinite(loss.item()) and all(math.isfinite(v) for v in metrics.values())
    assert torch.isfinite(logps.grad).all() and (logps.grad[mask == 0] == 0).all()
    assert math.isfinite(losses.mismatch_kl(logps.detach(), gen, mask))


def test_grpo_row_weights_scale_each_sequence_in_the_mean():
    logps = torch.zeros(3, 1, requires_grad=True)
    adv = torch.tensor([1.0, -0.5, -0.5])
    loss, _ = losses.grpo_loss(logps, logps.detach(), logps.detach(), adv, torch.ones(3, 1), 0.0, row_weights=torch.tensor([2.0, 1.0, 1.0]))
    loss.backward()
    assert logps.grad[:, 0].tolist() == pytest.approx([-2 / 3, 1 / 6, 1 / 6])  # -w * A / B
    unweighted, _ = losses.grpo_loss(logps.detach(), logps.detach(), logps.detach(), adv, torch.ones(3, 1), 0.0)
    same, _ = losses.grpo_loss(logps.detach(), logps.detach(), logps.detach(), adv, torch.ones(3, 1), 0.0, row_weights=torch.ones(3))
    assert torch.equal(unweighted, same)


def test_sequence_log_ratios_sum_real_tokens_only():
    # row 0: (-1 - -1.5) + (-2 - -1) = 0.5 - 1 = -0.5; its padded position holds inf - 0, selected out
    logps = torch.tensor([[-1.0, -2.0, float("inf")], [-3.0, -0.5, -0.25]])
    generator = torch.tensor([[-1.5, -1.0, 0.0], [-3.0, -1.0, -1.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0], [0.0, 1.0, 1.0]])
    assert losses.sequence_log_ratios(logps, generator, mask).tolist() == [-0.5, 1.25]  # row 1: 0.5 + 0.75


def test_importance_ess_hand_computed():
    # w = 1, 2, 3: (1 + 2 + 3)^2 / (3 * (1 + 4 + 9)) = 36 / 42
    assert losses.importance_ess(torch.tensor([0.0, math.log(2), math.log(3)])) == pytest.approx(6 / 7)
    assert losses.importance_ess(torch.full((5,), -7.25)) == pytest.approx(1.0)  # on-policy: all weights equal
    assert losses.importance_ess(torch.tensor([0.0, -1000.0, -1000.0])) == pytest.approx(1 / 3)  # one weight carries the batch
    # Scale-free and overflow-safe: exp(1000) is inf in any float, the ratio w = 1, 2 is not: 9 / (2 * 5)
    assert losses.importance_ess(torch.tensor([1000.0, 1000.0 + math.log(2)], dtype=torch.float64)) == pytest.approx(0.9)
    assert math.isnan(losses.importance_ess(torch.tensor([])))
