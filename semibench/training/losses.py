"""Pure loss and advantage functions over tensors. Each returns (loss, metrics).

Shapes: B = sequences (or pairs), T = completion tokens (right-padded, `mask` marks real tokens).
Log-probs are of the sampled tokens. Metrics are detached Python floats.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass(frozen=True)
class LossInputs:
    """One micro-batch as the objectives read it, built once per micro-batch. [B, T] tensors are per
    completion token (right-aligned, `mask` marks real ones). DPO-family pairs are (chosen[k],
    rejected[k]) rows; a row may sit in several pairs (GroupDPO)."""

    logps: Tensor  # [B, T] trainer log-probs of the sampled tokens (with grad)
    ref_logps: Tensor  # [B, T] reference log-probs (no grad)
    generator_logps: Tensor  # [B, T] log-probs the generator sampled with (for TIS)
    mask: Tensor  # [B, T] 1 on completion tokens
    entropy: Tensor | None  # [B, T] next-token entropies; with grad only when a loss term uses them
    advantages: Tensor | None = None  # [B] GRPO advantage of each row; None when the objective has no GRPO term
    grpo_weights: Tensor | None = None  # [B] weight of each row's GRPO term; None: all 1
    chosen: Tensor | None = None  # [P] the chosen row of each pair; None when the objective has no pairs
    rejected: Tensor | None = None  # [P] the rejected row of each pair


def sequence_logps(token_logps: Tensor, mask: Tensor, length_normalize: bool = False) -> Tensor:
    """[B, T] -> [B]: summed (paper default) or mean per-token log-probs of each completion.
    Padded positions are selected out, not multiplied by 0: an inf there would make inf x 0 = NaN."""
    total = torch.where(mask.bool(), token_logps, 0.0).sum(-1)
    return total / mask.sum(-1).clamp(min=1) if length_normalize else total


def dpo_loss(
    policy_chosen: Tensor,  # [P] sequence log-probs under the policy
    policy_rejected: Tensor,  # [P]
    ref_chosen: Tensor,  # [P] under the reference (no grad)
    ref_rejected: Tensor,  # [P]
    beta: float,
) -> tuple[Tensor, dict[str, float]]:
    """Sigmoid DPO, mean over pairs. Policy = reference gives exactly ln 2."""
    chosen_ratio = policy_chosen - ref_chosen
    rejected_ratio = policy_rejected - ref_rejected
    margin = beta * (chosen_ratio - rejected_ratio)
    loss = -F.logsigmoid(margin).mean()
    metrics = {
        "dpo_loss": loss.item(),
        "reward_margin": margin.mean().item(),
        "reward_accuracy": (margin > 0).float().mean().item(),
        "chosen_logp": policy_chosen.mean().item(),
        "rejected_logp": policy_rejected.mean().item(),
    }
    return loss, metrics


def group_advantages(rewards: Tensor, scale_by_std: bool = False, eps: float = 1e-6) -> Tensor:
    """[G, n] rewards -> [G, n] advantages, mean-centred per group (paper), optionally / std (its code)."""
    centred = rewards - rewards.mean(-1, keepdim=True)
    if scale_by_std:
        centred = centred / (rewards.std(-1, keepdim=True) + eps)
    return centred


def k3_kl(logps: Tensor, ref_logps: Tensor, mask: Tensor | None = None) -> Tensor:
    """Per-token k3 estimator of KL(policy || ref): exp(r) - r - 1 with r = ref - policy; always >= 0.

    With `mask`, r is 0 at padded positions before the exp: there the two models' log-probs of a pad
    token can differ by more than 88 nats, exp overflows fp32 to inf, and inf x 0 is NaN in any sum.
    """
    log_ratio = ref_logps - logps
    if mask is not None:
        log_ratio = torch.where(mask.bool(), log_ratio, 0.0)
    return torch.exp(log_ratio) - log_ratio - 1


def grpo_loss(
    logps: Tensor,  # [B, T] trainer log-probs (with grad)
    ref_logps: Tensor,  # [B, T] reference log-probs
    generator_logps: Tensor,  # [B, T] log-probs the generator sampled with
    advantages: Tensor,  # [B]
    mask: Tensor,  # [B, T]
    kl_beta: float,
    length_normalize: bool = False,
    tis_cap: float = 0.0,
    row_weights: Tensor | None = None,  # [B] each sequence's weight in the mean; None: all 1
) -> tuple[Tensor, dict[str, float]]:
    """On-policy GRPO with k3 KL: per-token loss -(w * ratio * A) + beta * KL, token-summed, mean over B
    (of the sequences' losses times `row_weights`, when given).

    `ratio = exp(logp - logp.detach())` is 1 in value with gradient grad(logp): one update per batch,
    so PPO clipping would be inactive (as in the paper's code). With `tis_cap > 0`, truncated
    importance sampling re-weights stale rollouts by w = min(pi_trainer / pi_generator, cap),
    which is what makes semi-online GRPO sound; the paper left that as future work.
    """
    real = mask.bool()  # every exp below sees 0, not a padded position's log-ratio (see k3_kl)
    ratio = torch.exp(torch.where(real, logps - logps.detach(), 0.0))
    weight = torch.ones_like(logps)
    if tis_cap > 0:
        weight = torch.exp(torch.where(real, logps.detach() - generator_logps, 0.0)).clamp(max=tis_cap)
    kl = k3_kl(logps, ref_logps, mask)
    per_token = -weight * ratio * advantages[:, None] + kl_beta * kl
    per_seq = sequence_logps(per_token, mask, length_normalize)
    loss = per_seq.mean() if row_weights is None else (per_seq * row_weights).mean()
    num_tokens = mask.sum().clamp(min=1)
    metrics = {
        "grpo_loss": loss.item(),
        "kl": ((kl * mask).sum() / num_tokens).item(),
        "tis_weight": ((weight * mask).sum() / num_tokens).item(),
    }
    return loss, metrics


def nll_loss(logps: Tensor, mask: Tensor) -> Tensor:
    """Per-token-normalised NLL of the chosen responses, mean over sequences (paper ablation)."""
    return -sequence_logps(logps, mask, length_normalize=True).mean()


def token_entropy(logits: Tensor) -> Tensor:
    """[..., V] logits -> [...] entropy of each next-token distribution (nats)."""
    logp = torch.log_softmax(logits.float(), dim=-1)
    return -(logp.exp() * logp).sum(-1)


def mismatch_kl(trainer_logps: Tensor, generator_logps: Tensor, mask: Tensor) -> float:
    """k3 estimate of KL(generator || trainer) on the generator's samples: staleness + numerics."""
    kl = k3_kl(generator_logps, trainer_logps, mask)
    return (kl.sum() / mask.sum().clamp(min=1)).item()


def sequence_log_ratios(logps: Tensor, generator_logps: Tensor, mask: Tensor) -> Tensor:
    """[B, T] -> [B]: log of each completion's importance weight pi_trainer / pi_generator, the sum of
    its tokens' log-ratios (padding selected out)."""
    return sequence_logps(logps - generator_logps, mask)


def importance_ess(log_weights: Tensor) -> float:
    """Normalised effective sample size of importance weights w = exp(log_weights), in (0, 1]:
    (sum w)^2 / (n sum w^2). 1 when every weight is equal (on-policy); 1/n when one weight dominates.
    Scale-free, so computed from w / max w in float64: a sum of many token log-ratios may not exp."""
    log_w = log_weights.detach().double().flatten()
    if log_w.numel() == 0:
        return float("nan")
    w = torch.exp(log_w - log_w.max())
    return (w.sum() ** 2 / (log_w.numel() * (w**2).sum())).item()
