"""Samples + rewards -> what the losses train on: DPO pairs or GRPO groups with advantages.

Rewards arrive as a [P, n] grid (P prompts, n samples each, in generation order). Math rewards are
binary (pick a random correct vs a random incorrect sample); scalar rewards pick best vs worst.
Prompts with no usable signal (all samples equal) are skipped and counted in `frac_valid_prompts`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch
from torch import Tensor

from semibench.engines.base import left_pad
from semibench.training.losses import group_advantages


@dataclass(frozen=True)
class Pairs:
    chosen: list[int]  # flat sample indices (prompt * n + j)
    rejected: list[int]
    frac_valid_prompts: float


@dataclass(frozen=True)
class Groups:
    indices: list[int]  # flat sample indices of the groups that carry signal
    advantages: list[float]  # one per index
    frac_valid_prompts: float


def dpo_pairs(rewards: list[list[float]], binary: list[bool], rng: random.Random) -> Pairs:
    """One pair per prompt. Binary: random correct vs random incorrect. Scalar: argmax vs argmin."""
    chosen, rejected = [], []
    n = len(rewards[0]) if rewards else 0
    for p, (row, is_binary) in enumerate(zip(rewards, binary)):
        if is_binary:
            good = [j for j, r in enumerate(row) if r > 0.5]
            bad = [j for j, r in enumerate(row) if r <= 0.5]
            if not good or not bad:
                continue
            best, worst = rng.choice(good), rng.choice(bad)
        else:
            best = max(range(n), key=lambda j: row[j])
            worst = min(range(n), key=lambda j: row[j])
            if row[best] == row[worst]:
                continue
        chosen.append(p * n + best)
        rejected.append(p * n + worst)
    return Pairs(chosen, rejected, len(chosen) / max(len(rewards), 1))


def group_dpo_pairs(rewards: list[list[float]], binary: list[bool]) -> Pairs:
    """GroupDPO: every (better, worse) pair within a prompt; binary rewards give correct x incorrect."""
    chosen, rejected = [], []
    n = len(rewards[0]) if rewards else 0
    valid = 0
    for p, (row, is_binary) in enumerate(zip(rewards, binary)):
        score = [float(r > 0.5) for r in row] if is_binary else row
        pairs = [(i, j) for i in range(n) for j in range(n) if score[i] > score[j]]
        valid += bool(pairs)
        chosen += [p * n + i for i, _ in pairs]
        rejected += [p * n + j for _, j in pairs]
    return Pairs(chosen, rejected, valid / max(len(rewards), 1))


def grpo_groups(rewards: list[list[float]], scale_by_std: bool) -> Groups:
    """Advantages per group; groups whose samples all scored the same carry no signal and are dropped."""
    if not rewards:
        return Groups([], [], 0.0)
    grid = torch.tensor(rewards, dtype=torch.float64)  # [P, n]
    advantages = group_advantages(grid, scale_by_std)
    keep = (grid.max(-1).values > grid.min(-1).values).tolist()
    n = grid.shape[1]
    indices = [p * n + j for p, k in enumerate(keep) if k for j in range(n)]
    flat = advantages.reshape(-1)
    return Groups(indices, [flat[i].item() for i in indices], sum(keep) / len(keep))


@dataclass(frozen=True)
class TokenBatch:
    """Prompt + completion ids left-padded so every completion ends at the last position.

    Right-aligning completions lets the forward compute logits for only the last T + 1 positions.
    """

    input_ids: Tensor  # [B, L]
    attention_mask: Tensor  # [B, L]
    position_ids: Tensor  # [B, L]
    completion_mask: Tensor  # [B, T] 1 on completion tokens (right-aligned)
    generator_logps: Tensor  # [B, T] log-probs the generator sampled with (0 on padding)


def pack(prompts: list[list[int]], completions: list[list[int]], generator_logps: list[list[float]], pad_id: int) -> TokenBatch:
    input_ids, attention_mask = left_pad([list(p) + list(c) for p, c in zip(prompts, completions)], pad_id)
    num_completion = max(max(len(c) for c in completions), 1)
    completion_mask = torch.zeros((len(prompts), num_completion))
    gen_logps = torch.zeros((len(prompts), num_completion))
    for row, (c, g) in enumerate(zip(completions, generator_logps)):
        if c:
            completion_mask[row, num_completion - len(c) :] = 1
            gen_logps[row, num_completion - len(c) :] = torch.tensor(g)
    position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
    return TokenBatch(input_ids, attention_mask, position_ids, completion_mask, gen_logps)
