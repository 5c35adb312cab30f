"""Samples + rewards -> what the losses train on: DPO pairs or GRPO groups with advantages.

Rewards arrive as a [P, n] grid (P prompts, n samples each, in generation order). Math rewards are
binary (pick a random correct vs a random incorrect sample); scalar rewards pick best vs worst.
Prompts with no usable signal (all samples equal) are skipped and counted in `frac_valid_prompts`.
`step_units` turns a step's grid into the units the trainer shards and `pack_units` packs a chunk of
them into a micro-batch; both are pure (no model, no rank), so every rank builds the same step.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from semibench.engines.base import Completion, left_pad
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
class SharedPrompts:
    """A micro-batch's distinct prompts, each run once; the batch's rows then hold only their own tokens.

    A GRPO group's samples and a DPO pair share their prompt (~55 tokens against ~75 sampled on the
    mixed task), so the shared forward skips up to a third of the step's tokens. Each prompt runs
    without its last token; its KV is repeated for every row that continues it, and that last token
    leads each row's own tokens, so the logits of every position a loss reads come from the row's
    forward, exactly as without sharing.
    """

    input_ids: Tensor  # [P, Lp] each distinct prompt minus its last token, left-padded
    attention_mask: Tensor  # [P, Lp]
    position_ids: Tensor  # [P, Lp]
    row_prompt: Tensor  # [B] which of the P prompts each row continues


@dataclass(frozen=True)
class TokenBatch:
    """Prompt + completion ids left-padded so every completion ends at the last position.

    Right-aligning completions lets the forward compute logits for only the last T + 1 positions.
    With `shared_prompts` set, input_ids (and its mask and positions) hold each row's prompt's last
    token and its completion, padded on the left, and the prompts before them run once
    (`SharedPrompts`).
    """

    input_ids: Tensor  # [B, L]
    attention_mask: Tensor  # [B, L]
    position_ids: Tensor  # [B, L]
    completion_mask: Tensor  # [B, T] 1 on completion tokens (right-aligned)
    generator_logps: Tensor  # [B, T] log-probs the generator sampled with (0 on padding)
    shared_prompts: SharedPrompts | None = None

    @property
    def num_tokens(self) -> int:
        """Tokens the forward runs (each shared prompt once)."""
        prompts = 0 if self.shared_prompts is None else int(self.shared_prompts.attention_mask.sum())
        return int(self.attention_mask.sum()) + prompts


def pack(prompts: list[list[int]], completions: list[list[int]], generator_logps: list[list[float]], pad_id: int,
         share_prompts: bool = False) -> TokenBatch:
    """Rows of prompt + completion; `share_prompts`: run each distinct prompt once (`SharedPrompts`;
    every prompt needs 2 tokens or more). Sharing is the caller's choice, not the data's: FSDP ranks
    must all run the same forwards."""
    num_completion = max(max(len(c) for c in completions), 1)
    completion_mask = torch.zeros((len(prompts), num_completion))
    gen_logps = torch.zeros((len(prompts), num_completion))
    for row, (c, g) in enumerate(zip(completions, generator_logps)):
        if c:
            completion_mask[row, num_completion - len(c) :] = 1
            gen_logps[row, num_completion - len(c) :] = torch.tensor(g)
    if share_prompts:
        distinct = list(dict.fromkeys(tuple(p) for p in prompts))
        if min(len(p) for p in distinct) < 2:
            raise ValueError("share_prompts needs prompts of 2 tokens or more")
        index = {p: i for i, p in enumerate(distinct)}
        prompt_ids, prompt_mask = left_pad([p[:-1] for p in distinct], pad_id)
        row_prompt = torch.tensor([index[tuple(p)] for p in prompts])
        input_ids, attention_mask = left_pad([[p[-1], *c] for p, c in zip(prompts, completions)], pad_id)
        before = torch.tensor([len(p) - 1 for p in prompts])[:, None]  # positions the shared prompt took
        shared = SharedPrompts(prompt_ids, prompt_mask, (prompt_mask.cumsum(-1) - 1).clamp(min=0), row_prompt)
        position_ids = before + (attention_mask.cumsum(-1) - 1).clamp(min=0)
        return TokenBatch(input_ids, attention_mask, position_ids, completion_mask, gen_logps, shared)
    input_ids, attention_mask = left_pad([list(p) + list(c) for p, c in zip(prompts, completions)], pad_id)
    position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
    return TokenBatch(input_ids, attention_mask, position_ids, completion_mask, gen_logps)


Unit = tuple[int, ...]  # the rows one unit trains: (sample,) for GRPO; for the DPO family one prompt's samples that sit in its pairs
Pair = tuple[int, int]  # (chosen, rejected): positions within their unit


@dataclass(frozen=True)
class StepUnits:
    """What one optimizer step trains on. Samples are flat indices (prompt * n + j) into the step's completions.

    A unit is what is sharded and packed whole: a GRPO sample, a DPO pair, or a GroupDPO prompt's
    samples with every (better, worse) pair among them. GroupDPO pairs one sample with several others;
    as one unit each sample is one row (one forward) however many pairs it sits in, so the objective
    costs what GRPO costs, not a pair's two rows per pair. The step's loss is the mean over its terms
    (GRPO samples, or pairs), so a micro-batch weighs its terms' share of the step (`terms`).
    """

    units: list[Unit]
    pairs: dict[Unit, tuple[Pair, ...]] | None  # the DPO family's pairs per unit; None for GRPO
    # Flat sample index -> its GRPO advantage, for the objectives with a GRPO term (grpo,
    # group_dpo_grpo); None for pure DPO objectives.
    advantage: dict[int, float] | None
    frac_valid_prompts: float

    def terms(self, chunk: Sequence[Unit]) -> int:
        """The loss terms in `chunk`: its pairs (DPO family) or its samples (GRPO)."""
        return len(chunk) if self.pairs is None else sum(len(self.pairs[u]) for u in chunk)

    @property
    def num_terms(self) -> int:
        return self.terms(self.units)

    def pair_rows(self, chunk: Sequence[Unit]) -> tuple[list[int], list[int]]:
        """The chosen and the rejected row of each pair of `chunk`'s micro-batch (rows as `unit_rows`)."""
        chosen, rejected, offset = [], [], 0
        for unit in chunk:
            for c, r in self.pairs[unit]:
                chosen.append(offset + c)
                rejected.append(offset + r)
            offset += len(unit)
        return chosen, rejected

    def flat_pairs(self) -> list[tuple[int, int]]:
        """Every pair of the step as flat sample indices (chosen, rejected)."""
        return [(unit[c], unit[r]) for unit in self.units for c, r in self.pairs[unit]]

    def row_advantages(self, rows: Sequence[int]) -> list[float] | None:
        """The GRPO advantage of each row (a flat sample index), or None without a GRPO term."""
        if self.advantage is None:
            return None
        # 0.0 for a sample of a group without signal; unreachable, as such a group yields no pair.
        return [self.advantage.get(i, 0.0) for i in rows]

    def row_grpo_weights(self, chunk: Sequence[Unit]) -> list[float] | None:
        """group_dpo_grpo only (else None): the weight of each row's GRPO term in `chunk`'s micro-batch.

        The trainer weighs a micro-batch by its share of the step's pairs; the GRPO term is the mean
        over the step's distinct samples (each advantage once, so a group's sum to zero as in GRPO
        alone). A micro-batch with R rows and P_mb of the step's P pairs, of S samples in all, gives
        its rows R P / (S P_mb) each: its weighted row mean times P_mb / P is its rows' sum over S.
        """
        if self.pairs is None or self.advantage is None:
            return None
        rows = sum(len(u) for u in chunk)
        samples = sum(len(u) for u in self.units)
        weight = rows * self.num_terms / (samples * self.terms(chunk))
        return [weight] * rows


def group_units(pairs: Pairs, n: int) -> tuple[list[Unit], dict[Unit, tuple[Pair, ...]]]:
    """Pairs -> one unit per prompt: its distinct paired samples (in order) and the pairs among them."""
    by_prompt: dict[int, list[tuple[int, int]]] = {}
    for c, r in zip(pairs.chosen, pairs.rejected):
        by_prompt.setdefault(c // n, []).append((c, r))
    units, local = [], {}
    for prompt_pairs in by_prompt.values():
        unit = tuple(sorted({i for pair in prompt_pairs for i in pair}))
        units.append(unit)
        local[unit] = tuple((unit.index(c), unit.index(r)) for c, r in prompt_pairs)
    return units, local


def step_units(objective: str, rewards: list[list[float]], binary: list[bool], rng: random.Random, grpo_scale_std: bool) -> StepUnits:
    """The step's units for `objective` (dpo | grpo | group_dpo | group_dpo_grpo) from its [P, n] reward grid.

    Only "dpo" draws from `rng` (one random correct and incorrect sample per binary prompt).
    """
    if objective == "grpo":
        groups = grpo_groups(rewards, grpo_scale_std)
        units = [(i,) for i in groups.indices]
        return StepUnits(units, None, dict(zip(groups.indices, groups.advantages)), groups.frac_valid_prompts)
    if objective == "dpo":
        pairs = dpo_pairs(rewards, binary, rng)
        units = list(zip(pairs.chosen, pairs.rejected))
        return StepUnits(units, {u: ((0, 1),) for u in units}, None, pairs.frac_valid_prompts)
    pairs = group_dpo_pairs(rewards, binary)
    units, local = group_units(pairs, len(rewards[0]) if rewards else 1)
    advantage = None
    if objective == "group_dpo_grpo":
        groups = grpo_groups(rewards, grpo_scale_std)
        advantage = dict(zip(groups.indices, groups.advantages))
    return StepUnits(units, local, advantage, pairs.frac_valid_prompts)


def frac_valid_by_kind(units: Sequence[Unit], kinds: Sequence[str], n: int) -> dict[str, float]:
    """Kind -> the fraction of that kind's prompts (`kinds[p]`: prompt p's) with signal, i.e. with a
    sample in `units` (a pair, or a group with an advantage); n samples per prompt."""
    valid = {i // n for unit in units for i in unit}
    out = {}
    for kind in sorted(set(kinds)):
        prompts = [p for p, k in enumerate(kinds) if k == kind]
        out[kind] = sum(p in valid for p in prompts) / len(prompts)
    return out


def unit_rows(chunk: Sequence[Unit]) -> list[int]:
    """The flat sample index of each row of a chunk's micro-batch: unit after unit (a DPO pair's chosen,
    then its rejected)."""
    return [i for unit in chunk for i in unit]


def pack_units(chunk: Sequence[Unit], prompt_ids: Sequence[Sequence[int]], completions: Sequence[Completion], pad_id: int,
               share_prompts: bool = False) -> TokenBatch:
    """A chunk of units as one micro-batch: each row its prompt's ids + the sample's tokens (rows as `unit_rows`)."""
    rows = unit_rows(chunk)
    return pack(
        [prompt_ids[completions[i].prompt_index] for i in rows],
        [list(completions[i].token_ids) for i in rows],
        [list(completions[i].logprobs) for i in rows],
        pad_id,
        share_prompts,
    )


# What one more micro-batch costs beyond its tokens, in tokens: reading every weight again in the
# forward, backward and reference forward, and a few thousand more small ops. An estimate (SmolLM2 on
# 2 CPU cores: ~0.1-0.2 s against ~6 ms a token); its only job is to stop a split that saves a few
# padded tokens.
MICRO_BATCH_OVERHEAD_TOKENS = 64


@dataclass(frozen=True)
class UnitShape:
    """What a unit's rows cost a micro-batch: the prompt they answer, its length, the longest sample."""

    prompt: int
    prompt_tokens: int
    completion_tokens: int
    rows: int


def unit_shapes(units: Sequence[Unit], prompt_ids: Sequence[Sequence[int]], completions: Sequence[Completion]) -> list[UnitShape]:
    shapes = []
    for unit in units:  # a unit's samples answer one prompt (a GRPO sample; a DPO pair; a GroupDPO prompt's samples)
        prompt = completions[unit[0]].prompt_index
        shapes.append(UnitShape(prompt, len(prompt_ids[prompt]), max(len(completions[i].token_ids) for i in unit), len(unit)))
    return shapes


def micro_batches(units: Sequence[Unit], shapes: Sequence[UnitShape], max_rows: int, share_prompts: bool = False,
                  overhead_tokens: int | None = None) -> list[list[Unit]]:
    """Units -> micro-batches of at most `max_rows` rows, grouped by length to waste little on padding.

    A micro-batch is padded to its longest row, so it costs rows x longest (prompt + sample). With
    `share_prompts` (`pack`) each distinct prompt runs once: a micro-batch costs its distinct prompts
    x the longest prompt, plus rows x the longest sample, so units are ordered by sample length and
    a prompt's units sharing a micro-batch share its forward. Units are sorted longest first (ties by
    position: deterministic) and cut into contiguous runs minimising those tokens plus
    `overhead_tokens` (default MICRO_BATCH_OVERHEAD_TOKENS) per micro-batch: an exact dynamic
    programme over the sorted order. A step's loss and metrics do not depend on the split: each
    unit's term is weighted by its share of the step.
    """
    if not units:
        return []
    overhead_tokens = MICRO_BATCH_OVERHEAD_TOKENS if overhead_tokens is None else overhead_tokens
    # Tokens every row runs: its prompt's last token and its sample when prompts are shared, else both whole.
    per_row = [s.completion_tokens + (1 if share_prompts else s.prompt_tokens) for s in shapes]
    order = sorted(range(len(units)), key=lambda i: (-per_row[i], i))
    best = [0.0] + [float("inf")] * len(order)  # best[j]: cheapest split of the j longest units
    cut = [0] * (len(order) + 1)
    for end in range(1, len(order) + 1):
        rows, prompts, longest_prompt = 0, set(), 0
        for start in range(end - 1, -1, -1):
            shape = shapes[order[start]]
            rows += shape.rows
            if rows > max_rows and start < end - 1:
                break
            if share_prompts:  # each distinct prompt once, minus the last token each row runs
                prompts.add(shape.prompt)
                longest_prompt = max(longest_prompt, shape.prompt_tokens - 1)
            cost = best[start] + len(prompts) * longest_prompt + rows * per_row[order[start]] + overhead_tokens
            if cost < best[end]:
                best[end], cut[end] = cost, start
    batches, end = [], len(order)
    while end:
        batches.append([units[i] for i in order[cut[end] : end]])
        end = cut[end]
    return batches[::-1]
